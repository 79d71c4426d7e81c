//! The ways to install Kairos, checked with the real tools: the build set-up's
//! libclang detection, the container image (hadolint, then built and run with
//! podman), the compose file (a real three-scheduler group in containers that
//! survives the kill of its leader's container), the Helm chart (helm lint,
//! kubernetes-validate against Kubernetes 1.29 and 1.33, trivy, what it renders, and
//! its TLS layout, and its rendered commands run as processes with certificates
//! issued as its Certificates ask: a group that survives the kill of pod 0 and
//! scales 3 → 5 → 3 while a job fires every second) and the systemd units
//! (systemd-analyze).
//!
//! The tools come from `scripts/setup-test-deps` (see `kairos_integration_tests::deploy`);
//! a missing one fails the test with the script's name. Everything a test creates
//! (containers, images, networks, volumes, network namespaces, processes, files)
//! lives in its temporary directory, its own container engine or its own
//! namespaces, and is removed when the test ends, however it ends. The compose
//! group publishes its ports on a loopback address of its own; containers and
//! chart pods talk on bridges inside namespaces the test made.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use chrono::{DateTime, TimeDelta, Utc};
use kairos_integration_tests::check::{self, Exec, Window};
use kairos_integration_tests::deploy::{self, Engine, Output, repo_root, run, tool};
use kairos_integration_tests::{all_executions_at, cli, field, num, wait_until, write_file};
use serde::Deserialize as _;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_kairos");
/// How long one lint, render or scan may take.
const TOOL_DEADLINE: Duration = Duration::from_secs(180);

fn path_in_repo(rel: &str) -> PathBuf {
    repo_root().join(rel)
}

// ---------------------------------------------------------------------------------
// scripts/setup-system-deps: the detection of what the build loads
// ---------------------------------------------------------------------------------

/// The first bytes of a 64-bit little-endian ELF file, which is all the detection
/// reads of a library.
const ELF64: &[u8] = b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00";

/// Runs `setup-system-deps --check` on a fake tree holding `files` and returns its
/// exit code and what it printed.
fn detect_in_tree(files: &[(&str, &[u8])]) -> Result<Output> {
    let root = tempfile::tempdir()?;
    for (rel, bytes) in files {
        let path = root.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("a file in a directory"))?;
        std::fs::write(&path, bytes)?;
    }
    run(
        Command::new(path_in_repo("scripts/setup-system-deps"))
            .arg("--check")
            .env("KAIROS_SYSROOT", root.path()),
        Duration::from_secs(60),
    )
}

/// The `setup: WHAT: ...` line the detection printed for `what`.
fn detected<'a>(out: &'a Output, what: &str) -> Result<&'a str> {
    let prefix = format!("setup: {what}: ");
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .ok_or_else(|| anyhow!("no {prefix:?} line in {out}"))
}

const HEADER: &str = "usr/lib/llvm-14/lib/clang/14.0.6/include/stddef.h";

#[test]
fn detection_takes_libclang_cpp_for_missing() -> Result<()> {
    // What a fresh Debian 12 machine of this kind has: Debian's libclang-cpp14 only.
    let out = detect_in_tree(&[
        ("usr/lib/x86_64-linux-gnu/libclang-cpp.so.14", ELF64),
        (HEADER, b"/* stddef */"),
    ])?;
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(detected(&out, "libclang")?, "missing", "{out}");
    Ok(())
}

#[test]
fn detection_finds_libclang_and_its_headers() -> Result<()> {
    let out = detect_in_tree(&[
        ("usr/lib/x86_64-linux-gnu/libclang-cpp.so.14", ELF64),
        ("usr/lib/x86_64-linux-gnu/libclang-14.so.1", ELF64),
        (HEADER, b"/* stddef */"),
    ])?;
    assert_eq!(out.code, Some(0), "{out}");
    let lib = detected(&out, "libclang")?;
    assert!(
        lib.ends_with("/usr/lib/x86_64-linux-gnu/libclang-14.so.1"),
        "{out}"
    );
    let headers = detected(&out, "clang headers")?;
    assert!(
        headers.ends_with("/usr/lib/llvm-14/lib/clang/14.0.6/include"),
        "{out}"
    );
    Ok(())
}

#[test]
fn detection_ignores_a_libclang_that_is_not_a_64_bit_elf_file() -> Result<()> {
    let out = detect_in_tree(&[
        (
            "usr/lib/x86_64-linux-gnu/libclang.so",
            b"INPUT(-lclang-14)\n",
        ),
        (HEADER, b"/* stddef */"),
    ])?;
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(detected(&out, "libclang")?, "missing", "{out}");
    Ok(())
}

#[test]
fn detection_wants_clang_headers_besides_the_library() -> Result<()> {
    let out = detect_in_tree(&[("usr/lib/x86_64-linux-gnu/libclang-14.so.1", ELF64)])?;
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        detected(&out, "libclang")?.ends_with("libclang-14.so.1"),
        "{out}"
    );
    assert_eq!(detected(&out, "clang headers")?, "missing", "{out}");
    Ok(())
}

// ---------------------------------------------------------------------------------
// deploy/Dockerfile
// ---------------------------------------------------------------------------------

#[test]
fn hadolint_finds_nothing_in_the_dockerfile() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = run(
        Command::new(tool("hadolint")?)
            .arg("--no-color")
            .arg(path_in_repo("deploy/Dockerfile"))
            // No configuration file of the machine's or the user's applies.
            .current_dir(dir.path())
            .env("XDG_CONFIG_HOME", dir.path()),
        TOOL_DEADLINE,
    )?;
    ensure!(
        out.success() && out.stdout.trim().is_empty(),
        "hadolint: {out}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------
// deploy/helm/kairos
// ---------------------------------------------------------------------------------

const RELEASE: &str = "kairos";
const NAMESPACE: &str = "kairos";

/// The cert-manager issuer every rendering names (the chart requires one when
/// cert-manager issues its certificates, the default).
const ISSUER: [&str; 2] = ["--set", "tls.certManager.issuerRef.name=kairos-ca"];

/// The renderings every check covers (each with [`ISSUER`]): the defaults, one
/// scheduler, five, every optional resource switched on, no TLS, Secrets made by the
/// user, and executors with a token and an open /metrics.
const VARIANTS: [(&str, &[&str]); 7] = [
    ("default", &[]),
    ("one-scheduler", &["--set", "scheduler.replicas=1"]),
    ("five-schedulers", &["--set", "scheduler.replicas=5"]),
    (
        "ingress-monitor-zone",
        &[
            "--set",
            "ingress.enabled=true",
            "--set",
            "serviceMonitor.enabled=true",
            "--set",
            "executor.zoneTag=true",
        ],
    ),
    (
        "insecure",
        &[
            "--set",
            "insecure=true",
            "--set",
            "serviceMonitor.enabled=true",
        ],
    ),
    (
        "own-secrets",
        &[
            "--set",
            "tls.certManager.enabled=false",
            "--set",
            "serviceMonitor.enabled=true",
        ],
    ),
    (
        "executor-token-open-metrics",
        &[
            "--set",
            "executor.tokenSecret.name=kairos-executor-token",
            "--set",
            "scheduler.metricsOpen=true",
            "--set",
            "serviceMonitor.enabled=true",
        ],
    ),
];

fn chart() -> PathBuf {
    path_in_repo("deploy/helm/kairos")
}

/// `helm template` of the chart with `args`, whatever its outcome.
fn helm_template_output(args: &[&str]) -> Result<Output> {
    run(
        Command::new(tool("helm")?)
            .args(["template", RELEASE])
            .arg(chart())
            .args(["--namespace", NAMESPACE])
            .args(args),
        TOOL_DEADLINE,
    )
}

/// `helm template` of the chart with [`ISSUER`] and `args`: the manifests as YAML
/// text.
fn helm_template(args: &[&str]) -> Result<String> {
    Ok(helm_template_output(&[&ISSUER[..], args].concat())?
        .ok()?
        .stdout)
}

/// The documents of a multi-document YAML text, as JSON values (empty ones left out).
fn documents(yaml: &str) -> Result<Vec<Value>> {
    let mut docs = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(yaml) {
        let value = Value::deserialize(doc).context("rendered YAML")?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

/// The one document of `kind` named `name`.
fn resource<'a>(docs: &'a [Value], kind: &str, name: &str) -> Result<&'a Value> {
    let found: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .collect();
    match found[..] {
        [one] => Ok(one),
        _ => bail!(
            "{} {kind} named {name} in the rendering (kinds: {:?})",
            found.len(),
            docs.iter()
                .map(|d| format!("{}/{}", d["kind"], d["metadata"]["name"]))
                .collect::<Vec<_>>()
        ),
    }
}

/// The only container of a workload.
fn container(workload: &Value) -> Result<&Value> {
    match workload["spec"]["template"]["spec"]["containers"].as_array() {
        Some(list) if list.len() == 1 => Ok(&list[0]),
        _ => bail!("not exactly one container in {workload}"),
    }
}

/// A container's args as strings.
fn args(container: &Value) -> Vec<String> {
    container["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Every value given to `flag` in `args` (`--flag VALUE` pairs).
fn flag_values(args: &[String], flag: &str) -> Vec<String> {
    args.windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| w[1].clone())
        .collect()
}

fn one_flag(args: &[String], flag: &str) -> Result<String> {
    match &flag_values(args, flag)[..] {
        [one] => Ok(one.clone()),
        other => bail!("{flag} given {} times in {args:?}", other.len()),
    }
}

/// Scheduler pod `ordinal`'s address, as the chart must render it.
fn pod_addr(ordinal: usize) -> String {
    format!("{RELEASE}-{ordinal}.{RELEASE}-peers.{NAMESPACE}.svc.cluster.local:7070")
}

#[test]
fn helm_lint_strict_passes_for_every_variant() -> Result<()> {
    for (name, values) in VARIANTS {
        let out = run(
            Command::new(tool("helm")?)
                .args(["lint", "--strict", "--namespace", NAMESPACE])
                .arg(chart())
                .args(ISSUER)
                .args(values),
            TOOL_DEADLINE,
        )?;
        ensure!(out.success(), "helm lint --strict ({name}): {out}");
        ensure!(
            !out.stdout.contains("[WARNING]") && !out.stdout.contains("[ERROR]"),
            "helm lint ({name}): {out}"
        );
    }
    Ok(())
}

#[test]
fn every_rendering_is_valid_for_kubernetes_1_29_and_1_33() -> Result<()> {
    let validate = tool("kubernetes-validate")?;
    let dir = tempfile::tempdir()?;
    let mut custom: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for (name, values) in VARIANTS {
        let text = helm_template(values)?;
        // ServiceMonitor (prometheus-operator's) and Certificate (cert-manager's) are
        // CRDs, for which kubernetes-validate has no schema (it would only warn):
        // they are checked field by field in `the_service_monitor_scrapes_every_scheduler`
        // and the TLS tests. Every other document is validated strictly.
        let (crds, core): (Vec<&str>, Vec<&str>) = text
            .split("\n---\n")
            .filter(|d| d.lines().any(|l| l.starts_with("kind: ")))
            .partition(|d| {
                d.lines()
                    .any(|l| l == "kind: ServiceMonitor" || l == "kind: Certificate")
            });
        for doc in crds {
            let kind = if doc.lines().any(|l| l == "kind: ServiceMonitor") {
                "ServiceMonitor"
            } else {
                "Certificate"
            };
            *custom.entry((name, kind)).or_insert(0) += 1;
        }
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, core.join("\n---\n"))?;
        for version in ["1.29.0", "1.33.0"] {
            let out = run(
                Command::new(&validate)
                    .args(["--strict", "--quiet", "--kubernetes-version", version])
                    .arg(&file),
                TOOL_DEADLINE,
            )?;
            // --quiet prints only warnings and failures: a kind without a schema
            // would be a warning, and counts as a failure here.
            ensure!(
                out.success() && out.stdout.trim().is_empty() && out.stderr.trim().is_empty(),
                "kubernetes-validate {version} ({name}): {out}"
            );
        }
    }
    // Left out of the validation: the ServiceMonitors of the variants that ask for
    // one, and the certificates cert-manager issues (3 or 1 or 5 schedulers, the
    // executors' pool, the admin, the scraper's), and nothing else.
    assert_eq!(
        custom,
        BTreeMap::from([
            (("default", "Certificate"), 5),
            (("executor-token-open-metrics", "Certificate"), 4),
            (("executor-token-open-metrics", "ServiceMonitor"), 1),
            (("five-schedulers", "Certificate"), 7),
            (("ingress-monitor-zone", "Certificate"), 6),
            (("ingress-monitor-zone", "ServiceMonitor"), 1),
            (("insecure", "ServiceMonitor"), 1),
            (("one-scheduler", "Certificate"), 3),
            (("own-secrets", "ServiceMonitor"), 1),
        ])
    );
    Ok(())
}

/// Runs `trivy config` on `target`, reporting only HIGH and CRITICAL findings.
fn trivy_config(target: &Path, cache: &Path) -> Result<Output> {
    run(
        Command::new(tool("trivy")?)
            .args([
                "config",
                // The checks built into the binary: nothing is downloaded.
                "--skip-check-update",
                "--skip-version-check",
                "--quiet",
                "--severity",
                "HIGH,CRITICAL",
                "--exit-code",
                "3",
            ])
            .arg(target)
            .env("TRIVY_CACHE_DIR", cache),
        TOOL_DEADLINE,
    )
}

#[test]
fn trivy_finds_nothing_high_or_critical() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cache = dir.path().join("cache");
    let rendered = dir.path().join("rendered");
    std::fs::create_dir_all(&rendered)?;
    for (name, values) in VARIANTS {
        std::fs::write(
            rendered.join(format!("{name}.yaml")),
            helm_template(values)?,
        )?;
    }
    for target in [rendered.as_path(), chart().as_path()] {
        let out = trivy_config(target, &cache)?;
        ensure!(out.success(), "trivy config {}: {out}", target.display());
    }
    // The same scan of a deliberately unsafe rendering must fail: the Kubernetes
    // checks really run, offline.
    let unsafe_dir = dir.path().join("unsafe");
    std::fs::create_dir_all(&unsafe_dir)?;
    std::fs::write(
        unsafe_dir.join("privileged.yaml"),
        helm_template(&["--set", "securityContext.privileged=true"])?,
    )?;
    let out = trivy_config(&unsafe_dir, &cache)?;
    ensure!(
        out.code == Some(3) && out.stdout.contains("KSV-0017"),
        "trivy should report the privileged containers (KSV-0017): {out}"
    );
    Ok(())
}

#[test]
fn the_schedulers_form_one_group_of_the_rendered_size() -> Result<()> {
    for replicas in [1_usize, 3, 5] {
        let docs = documents(&helm_template(&[
            "--set",
            &format!("scheduler.replicas={replicas}"),
        ])?)?;
        let sts = resource(&docs, "StatefulSet", RELEASE)?;
        assert_eq!(sts["spec"]["replicas"], json!(replicas));
        assert_eq!(sts["spec"]["podManagementPolicy"], "Parallel");
        assert_eq!(sts["spec"]["serviceName"], format!("{RELEASE}-peers"));
        assert_eq!(
            sts["spec"]["persistentVolumeClaimRetentionPolicy"],
            json!({"whenScaled": "Delete", "whenDeleted": "Retain"})
        );
        let scheduler = container(sts)?;
        let a = args(scheduler);
        assert_eq!(a[0], "scheduler", "{a:?}");
        assert_eq!(one_flag(&a, "--pod-name")?, "$(KAIROS_POD_NAME)");
        assert_eq!(one_flag(&a, "--data-dir")?, "/var/lib/kairos");
        assert_eq!(
            one_flag(&a, "--advertise-addr")?,
            format!("$(KAIROS_POD_NAME).{RELEASE}-peers.$(POD_NAMESPACE).svc.cluster.local:7070")
        );
        // Node id = ordinal + 1, each at its pod's DNS name.
        let want: Vec<String> = (0..replicas)
            .map(|i| format!("{}={}", i + 1, pod_addr(i)))
            .collect();
        assert_eq!(one_flag(&a, "--peers")?, want.join(","));
        let env: BTreeMap<String, Value> = scheduler["env"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| (field(e, "name").to_string(), e["valueFrom"].clone()))
            .collect();
        assert_eq!(
            env["KAIROS_POD_NAME"]["fieldRef"]["fieldPath"], "metadata.name",
            "{env:?}"
        );
        assert_eq!(
            env["POD_NAMESPACE"]["fieldRef"]["fieldPath"], "metadata.namespace",
            "{env:?}"
        );
        assert_eq!(scheduler["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(scheduler["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(scheduler["startupProbe"]["httpGet"]["path"], "/healthz");

        // Peers resolve each other before any is ready.
        let peers = resource(&docs, "Service", &format!("{RELEASE}-peers"))?;
        assert_eq!(peers["spec"]["clusterIP"], "None");
        assert_eq!(peers["spec"]["publishNotReadyAddresses"], true);

        // Executors dial every scheduler.
        let executor = container(resource(
            &docs,
            "Deployment",
            &format!("{RELEASE}-executor"),
        )?)?;
        let want: Vec<String> = (0..replicas).map(pod_addr).collect();
        assert_eq!(one_flag(&args(executor), "--schedulers")?, want.join(","));

        // The budget keeps a quorum; one scheduler gets none (it would block drains).
        let pdbs: Vec<&Value> = docs
            .iter()
            .filter(|d| d["kind"] == "PodDisruptionBudget")
            .collect();
        match replicas {
            1 => assert!(pdbs.is_empty(), "{pdbs:?}"),
            n => {
                assert_eq!(pdbs.len(), 1, "{pdbs:?}");
                assert_eq!(pdbs[0]["spec"]["minAvailable"], json!(n / 2 + 1));
                assert_eq!(
                    pdbs[0]["spec"]["selector"]["matchLabels"],
                    sts["spec"]["selector"]["matchLabels"]
                );
            }
        }

        // Before an upgrade or rollback, the hook removes the ids above the new size.
        let hook = resource(&docs, "Job", &format!("{RELEASE}-scale-down"))?;
        let hooks: BTreeSet<&str> = field(&hook["metadata"]["annotations"], "helm.sh/hook")
            .split(',')
            .collect();
        assert_eq!(hooks, BTreeSet::from(["pre-upgrade", "pre-rollback"]));
        assert_eq!(
            args(container(hook)?),
            [
                "--tls-ca",
                "/etc/kairos/tls/ca.crt",
                "--tls-cert",
                "/etc/kairos/tls/tls.crt",
                "--tls-key",
                "/etc/kairos/tls/tls.key",
                "--endpoint",
                &format!("https://{RELEASE}.{NAMESPACE}.svc.cluster.local:7070"),
                "cluster",
                "remove-scheduler",
                "--above",
                &replicas.to_string(),
            ]
        );
    }
    Ok(())
}

#[test]
fn even_scheduler_counts_are_refused_by_the_schema() -> Result<()> {
    for replicas in [0, 2, 4, 6] {
        let out = helm_template_output(&["--set", &format!("scheduler.replicas={replicas}")])?;
        assert!(!out.success(), "replicas {replicas} rendered: {out}");
        assert!(
            out.stderr.contains("scheduler.replicas") && out.stderr.contains("1, 3, 5"),
            "the refusal should name the field and the allowed counts: {out}"
        );
    }
    Ok(())
}

#[test]
fn every_pod_runs_restricted() -> Result<()> {
    let docs = documents(&helm_template(&[])?)?;
    let mut seen = Vec::new();
    for doc in docs.iter().filter(|d| !d["spec"]["template"].is_null()) {
        let pod = &doc["spec"]["template"]["spec"];
        let name = format!("{}/{}", doc["kind"], doc["metadata"]["name"]);
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
        assert_eq!(pod["securityContext"]["runAsUser"], 10001, "{name}");
        assert_eq!(pod["automountServiceAccountToken"], false, "{name}");
        let c = container(doc)?;
        let sc = &c["securityContext"];
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}");
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{name}");
        assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{name}");
        assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{name}");
        assert!(
            c["resources"]["limits"]["memory"].is_string(),
            "{name} has no memory limit"
        );
        seen.push(name);
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "\"Deployment\"/\"kairos-executor\"",
            "\"Job\"/\"kairos-scale-down\"",
            "\"StatefulSet\"/\"kairos\""
        ]
    );
    Ok(())
}

#[test]
fn executors_carry_their_tags_zone_and_drain_time() -> Result<()> {
    let docs = documents(&helm_template(&[
        "--set",
        "executor.tags.pool=batch",
        "--set",
        "executor.shutdownGraceSeconds=120",
        "--set",
        "executor.zoneTag=true",
    ])?)?;
    let deployment = resource(&docs, "Deployment", &format!("{RELEASE}-executor"))?;
    let executor = container(deployment)?;
    let a = args(executor);
    assert_eq!(a[0], "executor", "{a:?}");
    assert_eq!(one_flag(&a, "--id")?, "$(KAIROS_POD_NAME)");
    assert_eq!(
        flag_values(&a, "--tag"),
        ["pool=batch", "role=worker", "zone=$(NODE_ZONE)"]
    );
    assert_eq!(one_flag(&a, "--shutdown-grace")?, "120s");
    // The pod is killed only after the drain and a margin for the last reports.
    assert_eq!(
        deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
        135
    );
    let zone = executor["env"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["name"] == "NODE_ZONE")
        .ok_or_else(|| anyhow!("no NODE_ZONE in {executor}"))?;
    assert_eq!(
        zone["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.labels['topology.kubernetes.io/zone']"
    );
    // Off by default: a cluster without the pods' zone label would get an empty tag.
    let docs = documents(&helm_template(&[])?)?;
    let a = args(container(resource(
        &docs,
        "Deployment",
        &format!("{RELEASE}-executor"),
    )?)?);
    assert_eq!(flag_values(&a, "--tag"), ["role=worker"]);
    Ok(())
}

#[test]
fn the_service_monitor_scrapes_every_scheduler() -> Result<()> {
    let docs = documents(&helm_template(&[
        "--set",
        "serviceMonitor.enabled=true",
        "--set",
        "ingress.enabled=true",
    ])?)?;
    let monitor = resource(&docs, "ServiceMonitor", RELEASE)?;
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    let endpoints = monitor["spec"]["endpoints"]
        .as_array()
        .ok_or_else(|| anyhow!("no endpoints in {monitor}"))?;
    assert_eq!(endpoints.len(), 1, "{monitor}");
    assert_eq!(endpoints[0]["path"], "/metrics");
    // It selects exactly the client Service (not the peers' one), by a port it has.
    let selector = monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .ok_or_else(|| anyhow!("no selector in {monitor}"))?;
    let selected: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "Service")
        .filter(|d| {
            selector
                .iter()
                .all(|(k, v)| &d["metadata"]["labels"][k] == v)
        })
        .collect();
    assert_eq!(selected.len(), 1, "{selected:?}");
    assert_eq!(selected[0]["metadata"]["name"], RELEASE);
    // Over HTTPS, trusting the CA, checking the client Service's name (Prometheus
    // dials pod IPs), presenting the viewer certificate cert-manager issues.
    assert_eq!(endpoints[0]["scheme"], "https");
    let tls = &endpoints[0]["tlsConfig"];
    assert_eq!(
        tls["serverName"],
        format!("{RELEASE}.{NAMESPACE}.svc.cluster.local")
    );
    let metrics = format!("{RELEASE}-metrics");
    assert_eq!(
        tls["ca"]["secret"],
        json!({"name": metrics, "key": "ca.crt"})
    );
    assert_eq!(
        tls["cert"]["secret"],
        json!({"name": metrics, "key": "tls.crt"})
    );
    assert_eq!(tls["keySecret"], json!({"name": metrics, "key": "tls.key"}));
    let certificate = resource(&docs, "Certificate", &metrics)?;
    assert_eq!(certificate["spec"]["secretName"], metrics);
    assert_eq!(
        certificate["spec"]["uris"],
        json!([format!("urn:kairos:viewer:{metrics}")])
    );
    let server_names: Vec<&Value> = certificates_of_role(&docs, "scheduler")
        .map(|c| &c["spec"]["dnsNames"])
        .collect();
    assert_eq!(server_names.len(), 3);
    for names in server_names {
        assert!(
            names
                .as_array()
                .into_iter()
                .flatten()
                .any(|n| *n == tls["serverName"]),
            "a scheduler certificate without the scraper's server name: {names}"
        );
    }
    let port = field(&endpoints[0], "port");
    assert!(
        selected[0]["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["name"] == port && p["targetPort"] == "http"),
        "the Service has no port {port:?} to the schedulers' HTTP: {}",
        selected[0]
    );
    // The Ingress sends the UI to the same Service's HTTP port.
    let ingress = resource(&docs, "Ingress", RELEASE)?;
    let backend = &ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"];
    assert_eq!(backend["name"], RELEASE);
    assert_eq!(backend["port"]["number"], 8080);

    // With --metrics-open the scraper needs no certificate, only the CA.
    let docs = documents(&helm_template(&[
        "--set",
        "serviceMonitor.enabled=true",
        "--set",
        "scheduler.metricsOpen=true",
    ])?)?;
    let monitor = resource(&docs, "ServiceMonitor", RELEASE)?;
    let tls = &monitor["spec"]["endpoints"][0]["tlsConfig"];
    assert_eq!(
        tls["ca"]["secret"],
        json!({"name": format!("{RELEASE}-scheduler-1"), "key": "ca.crt"})
    );
    assert!(tls["cert"].is_null() && tls["keySecret"].is_null(), "{tls}");
    assert!(resource(&docs, "Certificate", &metrics).is_err());
    let a = args(container(resource(&docs, "StatefulSet", RELEASE)?)?);
    assert!(a.contains(&"--metrics-open".to_string()), "{a:?}");
    Ok(())
}

// The chart's TLS: certificates, where each pod finds its own, and the modes.

/// The rendering's cert-manager Certificates.
fn certificates(docs: &[Value]) -> impl Iterator<Item = &Value> {
    docs.iter().filter(|d| d["kind"] == "Certificate")
}

/// The Certificates whose URI names an identity of `role`.
fn certificates_of_role<'a>(docs: &'a [Value], role: &str) -> impl Iterator<Item = &'a Value> {
    let prefix = format!("urn:kairos:{role}:");
    certificates(docs).filter(move |c| {
        c["spec"]["uris"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|u| u.as_str().unwrap_or("").starts_with(&prefix))
    })
}

/// The Certificate whose only SAN URI is `uri`.
fn certificate_with_uri<'a>(docs: &'a [Value], uri: &str) -> Result<&'a Value> {
    let found: Vec<&Value> = certificates(docs)
        .filter(|c| c["spec"]["uris"] == json!([uri]))
        .collect();
    match found[..] {
        [one] => {
            ensure!(one["apiVersion"] == "cert-manager.io/v1", "{one}");
            Ok(one)
        }
        _ => bail!("{} Certificates with the URI {uri}", found.len()),
    }
}

/// A string list of a document as a set.
fn string_set(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|s| s.as_str().unwrap_or("").to_string())
        .collect()
}

/// Where Kubernetes puts file `path` (absolute, as the container sees it) of the
/// pod: the volume mounted above it and the (Secret name, key, optional) it is
/// projected from, if it comes from a Secret.
fn secret_file(workload: &Value, path: &str) -> Result<(String, String, bool)> {
    let c = container(workload)?;
    let mount = c["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| path.starts_with(&format!("{}/", field(m, "mountPath"))))
        .ok_or_else(|| anyhow!("no volume mounted above {path} in {c}"))?;
    let inside = &path[field(mount, "mountPath").len() + 1..];
    let volume = workload["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == mount["name"])
        .ok_or_else(|| anyhow!("no volume {} in the pod", mount["name"]))?;
    if let Some(name) = volume["secret"]["secretName"].as_str() {
        // A whole Secret: one file per key.
        return Ok((name.to_string(), inside.to_string(), false));
    }
    let mut found = Vec::new();
    for source in volume["projected"]["sources"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let secret = &source["secret"];
        for item in secret["items"].as_array().into_iter().flatten() {
            if item["path"] == inside {
                found.push((
                    field(secret, "name").to_string(),
                    field(item, "key").to_string(),
                    secret["optional"] == true,
                ));
            }
        }
    }
    match &found[..] {
        [one] => Ok(one.clone()),
        _ => bail!("{} Secret items projected to {path}: {volume}", found.len()),
    }
}

/// The --tls-ca, --tls-cert and --tls-key files of args: (Secret, key, optional).
fn tls_sources(workload: &Value, args: &[String]) -> Result<Vec<(String, String, bool)>> {
    ["--tls-ca", "--tls-cert", "--tls-key"]
        .iter()
        .map(|flag| secret_file(workload, &one_flag(args, flag)?))
        .collect()
}

#[test]
fn by_default_every_pod_speaks_tls_with_a_certificate_of_its_own() -> Result<()> {
    for replicas in [1_usize, 3, 5] {
        let text = helm_template(&["--set", &format!("scheduler.replicas={replicas}")])?;
        assert!(!text.contains("--insecure"), "{text}");
        let docs = documents(&text)?;
        let sts = resource(&docs, "StatefulSet", RELEASE)?;
        let scheduler = container(sts)?;
        for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
            assert_eq!(scheduler[probe]["httpGet"]["scheme"], "HTTPS", "{probe}");
        }
        // One Certificate per node id, for every name the node is dialled at.
        for ordinal in 0..replicas {
            let id = ordinal + 1;
            let cert = certificate_with_uri(&docs, &format!("urn:kairos:scheduler:{id}"))?;
            let spec = &cert["spec"];
            assert_eq!(spec["secretName"], format!("{RELEASE}-scheduler-{id}"));
            assert_eq!(spec["issuerRef"]["name"], "kairos-ca");
            let pod_host = pod_addr(ordinal).trim_end_matches(":7070").to_string();
            assert_eq!(
                string_set(&spec["dnsNames"]),
                BTreeSet::from([
                    pod_host,
                    RELEASE.to_string(),
                    format!("{RELEASE}.{NAMESPACE}"),
                    format!("{RELEASE}.{NAMESPACE}.svc"),
                    format!("{RELEASE}.{NAMESPACE}.svc.cluster.local"),
                    "localhost".to_string(),
                ])
            );
            assert_eq!(spec["ipAddresses"], json!(["127.0.0.1"]));
            let usages = string_set(&spec["usages"]);
            assert!(
                usages.contains("server auth") && usages.contains("client auth"),
                "{usages:?}"
            );
            // The pod of that ordinal reads the files of exactly that Secret.
            let pod = format!("{RELEASE}-{ordinal}");
            let a: Vec<String> = args(scheduler).iter().map(|a| expand(a, &pod)).collect();
            let sources = tls_sources(sts, &a)?;
            for ((secret, key, optional), want) in
                sources.iter().zip(["ca.crt", "tls.crt", "tls.key"])
            {
                assert_eq!(secret, field(spec, "secretName"), "{pod}");
                assert_eq!(key, want, "{pod}");
                // Secrets of ids above replicas do not exist: the pod must start anyway.
                assert!(optional, "{pod}: {secret} is not optional");
            }
        }
        assert_eq!(certificates_of_role(&docs, "scheduler").count(), replicas);

        // The executors' pool certificate names the prefix of the Deployment's pods.
        let deployment_name = format!("{RELEASE}-executor");
        let deployment = resource(&docs, "Deployment", &deployment_name)?;
        let cert =
            certificate_with_uri(&docs, &format!("urn:kairos:executor:{deployment_name}-*"))?;
        assert!(
            string_set(&cert["spec"]["usages"]).contains("client auth"),
            "{cert}"
        );
        let executor = container(deployment)?;
        let a: Vec<String> = args(executor)
            .iter()
            .map(|a| expand(a, &format!("{deployment_name}-5d8f9-abcde")))
            .collect();
        assert_eq!(
            one_flag(&a, "--id")?,
            format!("{deployment_name}-5d8f9-abcde")
        );
        for (secret, _, optional) in tls_sources(deployment, &a)? {
            assert_eq!(secret, field(&cert["spec"], "secretName"));
            assert!(!optional, "the executors cannot start without their Secret");
        }

        // The scale-down hook is an admin, over HTTPS.
        let hook = resource(&docs, "Job", &format!("{RELEASE}-scale-down"))?;
        let cert = certificate_with_uri(&docs, &format!("urn:kairos:admin:{RELEASE}-admin"))?;
        let a = args(container(hook)?);
        assert!(one_flag(&a, "--endpoint")?.starts_with("https://"), "{a:?}");
        for (secret, _, _) in tls_sources(hook, &a)? {
            assert_eq!(secret, field(&cert["spec"], "secretName"));
        }
        // Nothing else is issued.
        assert_eq!(certificates(&docs).count(), replicas + 2);
    }
    Ok(())
}

#[test]
fn cert_manager_needs_an_issuer_unless_tls_is_off_or_the_secrets_are_given() -> Result<()> {
    let out = helm_template_output(&[])?;
    assert!(!out.success(), "rendered without an issuer: {out}");
    assert!(
        out.stderr.contains("tls.certManager.issuerRef.name"),
        "the refusal should name the field: {out}"
    );
    for values in [
        ["--set", "insecure=true"],
        ["--set", "tls.certManager.enabled=false"],
    ] {
        let out = helm_template_output(&values)?;
        assert!(out.success(), "{values:?}: {out}");
    }
    Ok(())
}

#[test]
fn scaling_the_schedulers_changes_only_their_peers_in_the_pod_template() -> Result<()> {
    // Every pod projects the Secrets of every id the schema allows, so a scale
    // changes the template only by --peers, whatever the TLS mode.
    for mode in [&[][..], &["--set", "tls.certManager.enabled=false"][..]] {
        let template = |replicas: usize| -> Result<Value> {
            let docs = documents(&helm_template(
                &[mode, &["--set", &format!("scheduler.replicas={replicas}")]].concat(),
            )?)?;
            let mut template = resource(&docs, "StatefulSet", RELEASE)?["spec"]["template"].clone();
            let args = template["spec"]["containers"][0]["args"]
                .as_array_mut()
                .ok_or_else(|| anyhow!("no args"))?;
            let at = args
                .iter()
                .position(|a| a == "--peers")
                .ok_or_else(|| anyhow!("no --peers"))?;
            args.remove(at + 1);
            Ok(template)
        };
        let three = template(3)?;
        assert_eq!(template(5)?, three, "{mode:?}");
        assert_eq!(template(1)?, three, "{mode:?}");
    }
    Ok(())
}

#[test]
fn insecure_renders_no_certificate_and_says_so_on_every_node() -> Result<()> {
    let docs = documents(&helm_template(&[
        "--set",
        "insecure=true",
        "--set",
        "serviceMonitor.enabled=true",
    ])?)?;
    assert_eq!(certificates(&docs).count(), 0);
    let sts = resource(&docs, "StatefulSet", RELEASE)?;
    let deployment = resource(&docs, "Deployment", &format!("{RELEASE}-executor"))?;
    for workload in [sts, deployment] {
        let a = args(container(workload)?);
        assert_eq!(a.iter().filter(|x| *x == "--insecure").count(), 1, "{a:?}");
        assert!(a.iter().all(|x| !x.starts_with("--tls-")), "{a:?}");
        assert!(
            workload["spec"]["template"]["spec"]["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .all(|v| v["name"] != "tls"),
            "{workload}"
        );
    }
    assert_eq!(
        container(sts)?["readinessProbe"]["httpGet"]["scheme"],
        "HTTP"
    );
    let hook = args(container(resource(
        &docs,
        "Job",
        &format!("{RELEASE}-scale-down"),
    )?)?);
    assert!(
        one_flag(&hook, "--endpoint")?.starts_with("http://"),
        "{hook:?}"
    );
    let monitor = resource(&docs, "ServiceMonitor", RELEASE)?;
    assert!(
        monitor["spec"]["endpoints"][0]["tlsConfig"].is_null(),
        "{monitor}"
    );
    Ok(())
}

#[test]
fn with_own_secrets_the_pods_mount_the_documented_names() -> Result<()> {
    let docs = documents(&helm_template(&[
        "--set",
        "tls.certManager.enabled=false",
        "--set",
        "serviceMonitor.enabled=true",
    ])?)?;
    assert_eq!(certificates(&docs).count(), 0);
    let sts = resource(&docs, "StatefulSet", RELEASE)?;
    let a = args(container(sts)?);
    for ordinal in 0..MAX_PODS {
        let pod = format!("{RELEASE}-{ordinal}");
        let expanded: Vec<String> = a.iter().map(|x| expand(x, &pod)).collect();
        for (secret, _, _) in tls_sources(sts, &expanded)? {
            assert_eq!(secret, format!("{RELEASE}-scheduler-{}", ordinal + 1));
        }
    }
    let deployment = resource(&docs, "Deployment", &format!("{RELEASE}-executor"))?;
    let a: Vec<String> = args(container(deployment)?)
        .iter()
        .map(|x| expand(x, "kairos-executor-1-a"))
        .collect();
    for (secret, _, _) in tls_sources(deployment, &a)? {
        assert_eq!(secret, format!("{RELEASE}-executor"));
    }
    let hook = resource(&docs, "Job", &format!("{RELEASE}-scale-down"))?;
    for (secret, _, _) in tls_sources(hook, &args(container(hook)?))? {
        assert_eq!(secret, format!("{RELEASE}-admin"));
    }
    let monitor = resource(&docs, "ServiceMonitor", RELEASE)?;
    assert_eq!(
        monitor["spec"]["endpoints"][0]["tlsConfig"]["keySecret"]["name"],
        format!("{RELEASE}-metrics")
    );
    Ok(())
}

#[test]
fn executors_can_authenticate_with_a_token_instead() -> Result<()> {
    let docs = documents(&helm_template(&[
        "--set",
        "executor.tokenSecret.name=executor-token",
        "--set",
        "executor.tokenSecret.key=secret",
    ])?)?;
    let deployment = resource(&docs, "Deployment", &format!("{RELEASE}-executor"))?;
    let executor = container(deployment)?;
    let a = args(executor);
    assert!(
        flag_values(&a, "--tls-cert").is_empty() && flag_values(&a, "--token").is_empty(),
        "{a:?}"
    );
    // Only the CA, from a scheduler's Secret: no key of another party.
    assert_eq!(
        secret_file(deployment, &one_flag(&a, "--tls-ca")?)?,
        (
            format!("{RELEASE}-scheduler-1"),
            "ca.crt".to_string(),
            false
        )
    );
    let sources = &deployment["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == "tls")
        .ok_or_else(|| anyhow!("no tls volume"))?["projected"]["sources"];
    assert_eq!(
        sources,
        &json!([{"secret": {"name": format!("{RELEASE}-scheduler-1"), "items": [{"key": "ca.crt", "path": "ca.crt"}]}}])
    );
    let token = executor["env"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["name"] == "KAIROS_TOKEN")
        .ok_or_else(|| anyhow!("no KAIROS_TOKEN in {executor}"))?;
    assert_eq!(
        token["valueFrom"]["secretKeyRef"],
        json!({"name": "executor-token", "key": "secret"})
    );
    assert_eq!(
        certificates_of_role(&docs, "executor").count(),
        0,
        "a pool certificate is issued though the executors use a token"
    );
    Ok(())
}

/// Replaces the downward-API references Kubernetes would expand.
fn expand(arg: &str, pod: &str) -> String {
    arg.replace("$(KAIROS_POD_NAME)", pod)
        .replace("$(POD_NAMESPACE)", NAMESPACE)
        .replace("$(NODE_ZONE)", "zone-a")
}

#[test]
fn the_binary_accepts_every_rendered_command_line() -> Result<()> {
    // Each container's command line, its variables expanded, parsed by the real
    // binary: `--help` at the end makes it stop after parsing, so an unknown flag or
    // a bad value fails here, not on a cluster. In every TLS mode.
    for mode in [
        &[][..],
        &["--set", "insecure=true"],
        &[
            "--set",
            "executor.tokenSecret.name=t",
            "--set",
            "scheduler.metricsOpen=true",
        ],
    ] {
        let docs = documents(&helm_template(
            &[mode, &["--set", "executor.zoneTag=true"]].concat(),
        )?)?;
        for (kind, name, pod) in [
            ("StatefulSet", RELEASE.to_string(), format!("{RELEASE}-0")),
            (
                "Deployment",
                format!("{RELEASE}-executor"),
                format!("{RELEASE}-executor-5d8f9-abcde"),
            ),
            ("Job", format!("{RELEASE}-scale-down"), String::new()),
        ] {
            let c = container(resource(&docs, kind, &name)?)?;
            let a: Vec<String> = args(c).iter().map(|a| expand(a, &pod)).collect();
            let out = run(
                Command::new(BIN).args(&a).arg("--help").env_clear(),
                Duration::from_secs(30),
            )?;
            ensure!(
                out.success(),
                "{kind} {name} ({mode:?}): kairos rejects its args: {out}"
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// deploy/systemd
// ---------------------------------------------------------------------------------

const UNITS: [&str; 2] = ["kairos-scheduler.service", "kairos-executor.service"];

/// Copies the units into `dir` with `ExecStart` pointing at the built binary
/// (`systemd-analyze verify` checks that the program exists).
fn units_with_built_binary(dir: &Path) -> Result<Vec<PathBuf>> {
    UNITS
        .iter()
        .map(|unit| {
            let text = std::fs::read_to_string(path_in_repo("deploy/systemd").join(unit))?;
            ensure!(
                text.contains("ExecStart=/usr/local/bin/kairos "),
                "{unit} does not start /usr/local/bin/kairos"
            );
            let path = dir.join(unit);
            std::fs::write(
                &path,
                text.replace(
                    "ExecStart=/usr/local/bin/kairos ",
                    &format!("ExecStart={BIN} "),
                ),
            )?;
            Ok(path)
        })
        .collect()
}

#[test]
fn systemd_analyze_verifies_both_units() -> Result<()> {
    let analyze = tool("systemd-analyze")?;
    let dir = tempfile::tempdir()?;
    let units = units_with_built_binary(dir.path())?;
    let out = run(
        Command::new(&analyze)
            .args(["verify", "--man=no"])
            .args(&units),
        TOOL_DEADLINE,
    )?;
    // verify exits 0 on unknown keys too, with a warning: clean means silent.
    ensure!(
        out.success() && out.stdout.trim().is_empty() && out.stderr.trim().is_empty(),
        "systemd-analyze verify: {out}"
    );
    // The scheduler needs only its state directory and the network: its exposure
    // score stays at "OK" (2.0 or below on systemd's 10-point scale).
    let out = run(
        Command::new(&analyze)
            .args(["security", "--offline=yes", "--no-pager", "--threshold=20"])
            .arg(&units[0]),
        TOOL_DEADLINE,
    )?;
    ensure!(out.success(), "systemd-analyze security: {out}");
    Ok(())
}

#[test]
fn the_units_environment_files_set_real_flags() -> Result<()> {
    for (role, file) in [
        ("scheduler", "deploy/systemd/scheduler.env"),
        ("executor", "deploy/systemd/executor.env"),
    ] {
        let help = run(
            Command::new(BIN).args([role, "--help"]).env_clear(),
            Duration::from_secs(30),
        )?
        .ok()?
        .stdout;
        let text = std::fs::read_to_string(path_in_repo(file))?;
        let names: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#') && l.contains('='))
            .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim()))
            .collect();
        ensure!(!names.is_empty(), "{file} sets nothing");
        for name in names {
            ensure!(
                help.contains(&format!("[env: {name}=")),
                "{file} sets {name}, which `kairos {role}` does not read"
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// The image and the compose group, with a real container engine
// ---------------------------------------------------------------------------------

/// The tag the test gives its image (in its own engine's storage).
const IMAGE: &str = "localhost/kairos-deploy-test:latest";

/// Builds deploy/Dockerfile's `prebuilt` stage around the binary this test suite
/// built, on a Debian 12 base made from Debian's packages.
fn build_image(engine: &Engine) -> Result<()> {
    engine.import_debian_base()?;
    let context = engine.dir().join("context");
    std::fs::create_dir_all(&context)?;
    std::fs::copy(BIN, context.join("kairos"))?;
    let dockerfile = path_in_repo("deploy/Dockerfile");
    engine
        .podman(&[
            "build",
            "--quiet",
            // The docker format keeps HEALTHCHECK (OCI images have no field for it).
            "--format",
            "docker",
            "--pull=never",
            "--target",
            "prebuilt",
            "--file",
            &dockerfile.display().to_string(),
            "--tag",
            IMAGE,
            &context.display().to_string(),
        ])
        .context("building deploy/Dockerfile --target prebuilt")?;
    std::fs::remove_dir_all(&context)?;
    Ok(())
}

/// Checks what `podman image inspect` says of the image and what runs in it.
fn check_image(engine: &Engine) -> Result<()> {
    let inspect: Value =
        serde_json::from_str(&engine.podman(&["image", "inspect", IMAGE])?.stdout)?;
    let image = &inspect[0];
    let config = &image["Config"];
    assert_eq!(config["User"], "10001:10001", "{config}");
    assert_eq!(config["Entrypoint"], json!(["kairos"]), "{config}");
    assert_eq!(config["StopSignal"], "SIGTERM", "{config}");
    let ports: BTreeSet<&String> = config["ExposedPorts"]
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    assert_eq!(
        ports,
        BTreeSet::from([&"7070/tcp".to_string(), &"8080/tcp".to_string()])
    );
    assert!(
        config["Volumes"].get("/var/lib/kairos").is_some(),
        "{config}"
    );
    let health = image["Healthcheck"]["Test"].to_string();
    assert!(health.contains("/healthz"), "health check: {health}");

    let version = engine.podman(&["run", "--rm", IMAGE, "--version"])?;
    assert_eq!(
        version.stdout.trim(),
        format!("kairos {}", env!("CARGO_PKG_VERSION")),
        "{version}"
    );
    let id = engine.podman(&["run", "--rm", "--entrypoint", "id", IMAGE])?;
    assert_eq!(
        id.stdout.trim(),
        "uid=10001(kairos) gid=10001(kairos) groups=10001(kairos)",
        "{id}"
    );
    let bin = engine.podman(&["run", "--rm", "--entrypoint", "ls", IMAGE, "/usr/local/bin"])?;
    assert_eq!(bin.stdout.trim(), "kairos", "one binary: {bin}");
    Ok(())
}

/// The compose group of one test: its project name, its published addresses and
/// the engine it runs in.
struct ComposeGroup<'a> {
    engine: &'a Engine,
    project: String,
    env: Vec<(String, String)>,
    /// Each scheduler's published gRPC endpoint, by node id.
    endpoints: BTreeMap<u64, String>,
    /// Each scheduler's published HTTP address, by node id.
    http: BTreeMap<u64, String>,
}

impl<'a> ComposeGroup<'a> {
    fn new(engine: &'a Engine) -> Result<ComposeGroup<'a>> {
        let (ip, ports) = deploy::loopback_ports(6)?;
        let mut env = vec![
            ("KAIROS_IMAGE".to_string(), IMAGE.to_string()),
            ("KAIROS_PUBLISH_IP".to_string(), ip.to_string()),
        ];
        let mut endpoints = BTreeMap::new();
        let mut http = BTreeMap::new();
        for id in 1..=3_u64 {
            let grpc = ports[usize::try_from(id)? - 1];
            let web = ports[usize::try_from(id)? + 2];
            env.push((format!("KAIROS_GRPC_PORT_{id}"), grpc.to_string()));
            env.push((format!("KAIROS_HTTP_PORT_{id}"), web.to_string()));
            endpoints.insert(id, format!("http://{ip}:{grpc}"));
            http.insert(id, format!("{ip}:{web}"));
        }
        Ok(ComposeGroup {
            engine,
            project: format!("kairos-deploy-{}", std::process::id()),
            env,
            endpoints,
            http,
        })
    }

    /// `podman-compose -p PROJECT -f deploy/compose.yaml args…`.
    fn compose(&self, args: &[&str]) -> Result<Output> {
        let mut cmd = self.engine.command(&tool("podman-compose")?);
        cmd.arg("--project-name")
            .arg(&self.project)
            .arg("--file")
            .arg(path_in_repo("deploy/compose.yaml"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        run(&mut cmd, deploy::ENGINE_DEADLINE)
    }

    /// The container of compose service `service`.
    fn container(&self, service: &str) -> Result<String> {
        let out = self.engine.podman(&[
            "ps",
            "--all",
            "--filter",
            &format!("label=com.docker.compose.project={}", self.project),
            "--filter",
            &format!("label=com.docker.compose.service={service}"),
            "--format",
            "{{.Names}}",
        ])?;
        match out.stdout.split_whitespace().collect::<Vec<_>>()[..] {
            [one] => Ok(one.to_string()),
            _ => bail!("not one container for {service}: {out}"),
        }
    }

    /// Every container's last log lines, for failure messages.
    fn logs(&self) -> String {
        let mut text = String::new();
        for service in [
            "scheduler-1",
            "scheduler-2",
            "scheduler-3",
            "executor-1",
            "executor-2",
        ] {
            let Ok(name) = self.container(service) else {
                continue;
            };
            let log = self
                .engine
                .podman_output(&["logs", "--tail", "25", &name])
                .map(|o| format!("{}{}", o.stdout, o.stderr))
                .unwrap_or_else(|e| format!("{e:#}"));
            text.push_str(&format!("--- {service} ---\n{log}\n"));
        }
        text
    }

    fn with_logs(&self, e: anyhow::Error) -> anyhow::Error {
        anyhow!("{e:#}\n{}", self.logs())
    }

    /// `cluster status -o json` through scheduler `id`'s published port.
    fn status(&self, id: u64) -> Result<Value> {
        kairos_integration_tests::cli_within(
            BIN.as_ref(),
            &self.endpoints[&id],
            &["cluster", "status", "-o", "json"],
            Duration::from_secs(15),
        )?
        .ok()?
        .json()
    }

    /// The leader as the schedulers in `ids` see it: a node that answers for
    /// itself as leader, named leader by a majority of the three.
    fn leader_among(&self, ids: &[u64]) -> Option<u64> {
        let answers: Vec<(u64, Value)> = ids
            .iter()
            .filter_map(|&id| Some((id, self.status(id).ok()?)))
            .collect();
        agreed_leader(&answers, 2)
    }

    /// Waits until the schedulers in `ids` agree on a leader that is one of them,
    /// with `executors` executors connected to it.
    fn wait_for_leader(&self, ids: &[u64], executors: usize) -> Result<u64> {
        wait_until(
            Duration::from_secs(90),
            &format!("a leader among schedulers {ids:?} with {executors} executors"),
            || {
                let leader = self.leader_among(ids)?;
                let status = self.status(leader).ok()?;
                let connected = status["executors"].as_array().map_or(0, |l| {
                    l.iter().filter(|e| num(e, "schedulerId") == leader).count()
                });
                (connected >= executors).then_some(leader)
            },
        )
        .map_err(|e| self.with_logs(e))
    }

    /// Every execution of `job`, oldest first, as scheduler `id` lists them.
    fn records(&self, id: u64, job: &str) -> Result<Vec<Exec>> {
        Exec::parse_all(&all_executions_at(BIN.as_ref(), &self.endpoints[&id], job)?)
    }
}

/// Waits until `job` has `n` succeeded first attempts scheduled after `after`.
fn wait_for_successes(
    group: &ComposeGroup<'_>,
    via: u64,
    job: &str,
    after: DateTime<Utc>,
    n: usize,
) -> Result<Vec<Exec>> {
    wait_until(
        Duration::from_secs(60),
        &format!("{n} succeeded runs of {job} scheduled after {after}"),
        || {
            let records = group.records(via, job).ok()?;
            let ok = records
                .iter()
                .filter(|e| e.status == "succeeded" && e.scheduled_at > after)
                .count();
            (ok >= n).then_some(records)
        },
    )
    .map_err(|e| group.with_logs(e))
}

#[test]
fn the_image_runs_as_non_root_and_a_compose_group_survives_its_leader() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let engine = Engine::new(&dir.path().join("engine"))?;
    let started = Instant::now();
    build_image(&engine)?;
    eprintln!("image built in {:?}", started.elapsed());
    check_image(&engine)?;

    let group = ComposeGroup::new(&engine)?;
    group.compose(&["up", "--detach"])?.ok()?;
    let leader = group.wait_for_leader(&[1, 2, 3], 2)?;
    eprintln!(
        "compose group up, leader {leader}, at {:?}",
        started.elapsed()
    );

    // The processes run as the image's user, and the image's health check passes
    // against a real scheduler.
    for id in 1..=3 {
        let name = group.container(&format!("scheduler-{id}"))?;
        let uid = engine.podman(&["exec", &name, "id", "-u"])?;
        assert_eq!(uid.stdout.trim(), "10001", "{uid}");
        engine
            .podman(&["healthcheck", "run", &name])
            .map_err(|e| group.with_logs(e.context(format!("health check of {name}"))))?;
    }
    // The published HTTP port serves /readyz (the UI's port).
    let http = &group.http[&leader];
    let ready = run(
        Command::new("bash").arg("-c").arg(format!(
            "exec 3<>/dev/tcp/{}/{} && printf 'GET /readyz HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -n 1 <&3",
            http.split(':').next().unwrap_or(""),
            http.split(':').nth(1).unwrap_or("")
        )),
        Duration::from_secs(15),
    )?;
    assert!(ready.stdout.contains(" 200 "), "GET /readyz: {ready}");

    let job = "tick";
    let file = write_file(
        dir.path(),
        "tick.yaml",
        &format!(
            "name: {job}\nschedule: \"@every 1s\"\nshell:\n  command: echo \"tick $KAIROS_SCHEDULED_AT\"\n\
             target:\n  selector: role=worker\nhistory:\n  keep: 1000\n"
        ),
    )?;
    cli(
        BIN.as_ref(),
        &group.endpoints[&1],
        &["job", "apply", "-f", &file],
    )?
    .ok()
    .map_err(|e| group.with_logs(e))?;
    let applied = Utc::now();
    wait_for_successes(&group, 1, job, applied - TimeDelta::seconds(5), 3)?;

    // Kill the leader's container; the other two elect a new leader and go on.
    let leader = group.wait_for_leader(&[1, 2, 3], 2)?;
    let survivors: Vec<u64> = [1, 2, 3].into_iter().filter(|&id| id != leader).collect();
    let killed = Utc::now();
    let kill_started = Instant::now();
    engine.podman(&["kill", &group.container(&format!("scheduler-{leader}"))?])?;
    let new_leader = group.wait_for_leader(&survivors, 0)?;
    let elected = kill_started.elapsed();
    group.wait_for_leader(&survivors, 2)?;
    eprintln!(
        "killed scheduler-{leader}'s container; scheduler-{new_leader} led after {elected:?}, \
         with both executors after {:?}",
        kill_started.elapsed()
    );
    let via = survivors[0];
    wait_for_successes(&group, via, job, killed + TimeDelta::seconds(1), 3)?;

    // Every instant from the first run to the last success so far has exactly one
    // outcome, across the failover: nothing fired twice, nothing was dropped.
    let records = wait_until(
        Duration::from_secs(60),
        "every execution up to the last success to be final",
        || {
            let records = group.records(via, job).ok()?;
            let last = records
                .iter()
                .filter(|e| e.status == "succeeded")
                .map(|e| e.scheduled_at)
                .max()?;
            records
                .iter()
                .filter(|e| e.scheduled_at <= last)
                .all(|e| check::is_final(&e.status))
                .then_some(records)
        },
    )
    .map_err(|e| group.with_logs(e))?;
    let first = records
        .iter()
        .map(|e| e.scheduled_at)
        .min()
        .ok_or_else(|| anyhow!("no executions"))?;
    let last = records
        .iter()
        .filter(|e| e.status == "succeeded")
        .map(|e| e.scheduled_at)
        .max()
        .ok_or_else(|| anyhow!("no success"))?;
    let window = Window {
        first,
        last,
        period: TimeDelta::seconds(1),
    };
    check::check_instants(&records, &window).map_err(|e| group.with_logs(e))?;
    for e in records.iter().filter(|e| e.status == "succeeded") {
        assert!(
            ["executor-1", "executor-2"].contains(&e.executor.as_str()),
            "ran on {:?}: {}",
            e.executor,
            e.raw
        );
        assert!(
            field(&e.raw, "output").starts_with("tick 20"),
            "output of {}",
            e.raw
        );
    }
    let after_kill = records
        .iter()
        .filter(|e| e.status == "succeeded" && e.scheduled_at > killed)
        .count();
    eprintln!(
        "{} instants from {first} to {last}, {after_kill} succeeded after the kill",
        window.instants().len()
    );

    // Tear down as a user would, then check that nothing is left.
    let down_started = Instant::now();
    // Stop first (SIGTERM, 10 s), so that the logs of a process that needed
    // SIGKILL can still be shown, then remove.
    let stop = group.compose(&["stop", "--timeout", "10"])?.ok()?;
    for line in stop.stderr.lines().filter(|l| l.contains("SIGKILL")) {
        eprintln!("compose stop: {line}");
        for id in 1..=3 {
            let service = format!("scheduler-{id}");
            let name = group.container(&service)?;
            if line.contains(&name) {
                let log = engine.podman_output(&["logs", "--tail", "12", &name])?;
                eprintln!("--- {service} ---\n{}{}", log.stdout, log.stderr);
            }
        }
    }
    eprintln!("compose stop took {:?}", down_started.elapsed());
    group
        .compose(&["down", "--volumes", "--timeout", "0"])?
        .ok()?;
    // podman-compose leaves the project's network behind.
    engine.podman(&["network", "rm", &format!("{}_default", group.project)])?;
    eprintln!("compose down took {:?}", down_started.elapsed());
    let containers = engine.podman(&["ps", "--all", "--quiet"])?;
    assert!(
        containers.stdout.trim().is_empty(),
        "containers left: {containers}"
    );
    let volumes = engine.podman(&["volume", "ls", "--quiet"])?;
    assert!(volumes.stdout.trim().is_empty(), "volumes left: {volumes}");
    let networks = engine.podman(&["network", "ls", "--format", "{{.Name}}"])?;
    assert!(
        !networks.stdout.contains(&group.project),
        "network left: {networks}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------
// The chart's rendered commands, run as processes
// ---------------------------------------------------------------------------------
//
// No Kubernetes API server can run here, so the test plays kubelet and StatefulSet
// controller: it takes the scheduler and executor containers' args and env from
// `helm template`, expands them as Kubernetes would (downward API, `$(VAR)`),
// maps the data volume's mount path to a directory per pod, and starts exactly
// those commands, each pod in a network namespace of its own (so each binds
// 0.0.0.0:7070 and :8080 as in a pod) with the StatefulSet's DNS names resolving
// to the pods. Scaling and rolling updates follow the controllers' order. It plays
// cert-manager too: each rendered Certificate becomes a Secret signed by one CA for
// exactly the URI and names the Certificate asks for, and each pod gets the files
// its Secret volumes project, where they project them. So the group only forms if
// the chart's certificate layout is right: peers accept only members' scheduler
// certificates valid for the names they dial, executors register under the pool
// certificate, the hook is an admin.

/// The zone the test's "nodes" are in, for `--tag zone=$(NODE_ZONE)`.
const ZONE: &str = "zone-a";

/// A container of a rendered workload, ready to start as pod `pod`.
struct PodCommand {
    args: Vec<String>,
    env: Vec<(String, String)>,
}

/// Expands `$(NAME)` references to the container's own variables, as Kubernetes does.
fn expand_refs(text: &str, env: &[(String, String)]) -> String {
    let mut out = text.to_string();
    for (name, value) in env {
        out = out.replace(&format!("$({name})"), value);
    }
    out
}

/// cert-manager's and the kubelet's part: a CA (`kairos certs init`), a Secret
/// (tls.crt, tls.key, ca.crt) per rendered Certificate, signed by `kairos certs
/// issue` for exactly the Certificate's URI, DNS names and IP addresses, and each
/// pod's Secret volumes as directories.
struct Secrets {
    ca_dir: PathBuf,
    /// DIR/secrets/NAME/KEY, DIR/pods/POD/VOLUME/PATH.
    dir: PathBuf,
}

impl Secrets {
    fn new(dir: &Path) -> Result<Secrets> {
        let ca_dir = dir.join("ca");
        run(
            Command::new(BIN)
                .args(["certs", "init"])
                .arg(&ca_dir)
                .env_clear(),
            Duration::from_secs(30),
        )?
        .ok()?;
        Ok(Secrets {
            ca_dir,
            dir: dir.to_path_buf(),
        })
    }

    fn secret(&self, name: &str) -> PathBuf {
        self.dir.join("secrets").join(name)
    }

    /// Issues the Secret of every Certificate that has none yet (cert-manager keeps
    /// an issued one; a scaled-away id's Secret stays too).
    fn issue(&self, certificates: &[Value]) -> Result<()> {
        for cert in certificates {
            let spec = &cert["spec"];
            let secret = self.secret(field(spec, "secretName"));
            if secret.exists() {
                continue;
            }
            let uri = match &string_set(&spec["uris"]).into_iter().collect::<Vec<_>>()[..] {
                [one] => one.clone(),
                other => bail!("{} URIs in {cert}", other.len()),
            };
            let (role, name) = uri
                .strip_prefix("urn:kairos:")
                .and_then(|r| r.split_once(':'))
                .ok_or_else(|| anyhow!("not a Kairos identity: {uri}"))?;
            let hosts: Vec<String> = string_set(&spec["dnsNames"])
                .into_iter()
                .chain(string_set(&spec["ipAddresses"]))
                .collect();
            let mut cmd = Command::new(BIN);
            cmd.args(["-o", "json", "certs", "issue"])
                .arg(&self.ca_dir)
                .args(["--role", role, "--name", name])
                .env_clear();
            if !hosts.is_empty() {
                cmd.arg("--host").arg(hosts.join(","));
            }
            let out = run(&mut cmd, Duration::from_secs(30))?.ok()?;
            let written: Value = serde_json::from_str(&out.stdout)?;
            let file = |ext: &str| -> Result<PathBuf> {
                written["written"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .find(|p| p.ends_with(ext))
                    .map(PathBuf::from)
                    .ok_or_else(|| anyhow!("no {ext} in {written}"))
            };
            std::fs::create_dir_all(&secret)?;
            std::fs::copy(file(".crt")?, secret.join("tls.crt"))?;
            std::fs::copy(file(".key")?, secret.join("tls.key"))?;
            std::fs::copy(self.ca_dir.join("ca.crt"), secret.join("ca.crt"))?;
        }
        Ok(())
    }

    /// Pod `pod`'s Secret-backed volumes of workload `doc`, filled as the kubelet
    /// fills them (each item at its path; a missing optional Secret left out, a
    /// missing required one fails): (mount path, local directory).
    fn mount(&self, doc: &Value, pod: &str) -> Result<Vec<(String, PathBuf)>> {
        let c = container(doc)?;
        let volumes = &doc["spec"]["template"]["spec"]["volumes"];
        let mut mounts = Vec::new();
        for m in c["volumeMounts"].as_array().into_iter().flatten() {
            let volume = volumes
                .as_array()
                .into_iter()
                .flatten()
                .find(|v| v["name"] == m["name"]);
            let Some(volume) = volume else { continue };
            // (Secret, key, path in the volume, optional)
            let mut files: Vec<(String, String, String, bool)> = Vec::new();
            if let Some(name) = volume["secret"]["secretName"].as_str() {
                for key in ["ca.crt", "tls.crt", "tls.key"] {
                    files.push((name.to_string(), key.to_string(), key.to_string(), false));
                }
            } else if let Some(sources) = volume["projected"]["sources"].as_array() {
                for source in sources {
                    let secret = &source["secret"];
                    for item in secret["items"].as_array().into_iter().flatten() {
                        files.push((
                            field(secret, "name").to_string(),
                            field(item, "key").to_string(),
                            field(item, "path").to_string(),
                            secret["optional"] == true,
                        ));
                    }
                }
            } else {
                continue;
            }
            let local = self.dir.join("pods").join(pod).join(field(m, "name"));
            if local.exists() {
                std::fs::remove_dir_all(&local)?;
            }
            std::fs::create_dir_all(&local)?;
            for (secret, key, path, optional) in files {
                let from = self.secret(&secret).join(&key);
                if !from.exists() {
                    ensure!(
                        optional,
                        "{pod}: Secret {secret} has no {key}: the pod cannot start"
                    );
                    continue;
                }
                let to = local.join(&path);
                std::fs::create_dir_all(to.parent().unwrap_or(&local))?;
                std::fs::copy(&from, &to)?;
            }
            mounts.push((field(m, "mountPath").to_string(), local));
        }
        Ok(mounts)
    }
}

/// Pod `pod`'s command from workload `doc`: its container's env (literal values and
/// the downward-API fields the chart uses) and args with `$(VAR)` expanded, the
/// data volume's mount path replaced by `data_dir`, paths in Secret volumes by
/// where `secrets` put their files.
fn pod_command(
    doc: &Value,
    pod: &str,
    data_dir: Option<&Path>,
    secrets: &Secrets,
) -> Result<PodCommand> {
    let c = container(doc)?;
    let mut env = Vec::new();
    for e in c["env"].as_array().into_iter().flatten() {
        let name = field(e, "name").to_string();
        let value = if let Some(v) = e["value"].as_str() {
            v.to_string()
        } else {
            match field(&e["valueFrom"]["fieldRef"], "fieldPath") {
                "metadata.name" => pod.to_string(),
                "metadata.namespace" => NAMESPACE.to_string(),
                "metadata.labels['topology.kubernetes.io/zone']" => ZONE.to_string(),
                other => bail!("{pod}: env {name} from {other:?}, which the test cannot give"),
            }
        };
        env.push((name, value));
    }
    let mount = c["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["name"] == "data")
        .map(|m| field(m, "mountPath").to_string());
    let secret_mounts = secrets.mount(doc, pod)?;
    let args = args(c)
        .iter()
        .map(|a| {
            let a = expand_refs(a, &env);
            if let Some((at, local)) = secret_mounts
                .iter()
                .find(|(at, _)| a.starts_with(&format!("{at}/")))
            {
                return format!("{}{}", local.display(), &a[at.len()..]);
            }
            match (&mount, data_dir) {
                (Some(mount), Some(dir)) if a == *mount => dir.display().to_string(),
                _ => a,
            }
        })
        .collect();
    Ok(PodCommand { args, env })
}

/// The chart's workloads for `replicas` schedulers.
struct Rendering {
    replicas: usize,
    statefulset: Value,
    deployment: Value,
    hook: Value,
    certificates: Vec<Value>,
}

fn render(replicas: usize) -> Result<Rendering> {
    let docs = documents(&helm_template(&[
        "--set",
        &format!("scheduler.replicas={replicas}"),
        "--set",
        "executor.zoneTag=true",
        "--set",
        "executor.shutdownGraceSeconds=10",
    ])?)?;
    Ok(Rendering {
        replicas,
        statefulset: resource(&docs, "StatefulSet", RELEASE)?.clone(),
        deployment: resource(&docs, "Deployment", &format!("{RELEASE}-executor"))?.clone(),
        hook: resource(&docs, "Job", &format!("{RELEASE}-scale-down"))?.clone(),
        certificates: certificates(&docs).cloned().collect(),
    })
}

impl Rendering {
    fn termination_grace(doc: &Value) -> Duration {
        Duration::from_secs(
            doc["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
                .as_u64()
                .unwrap_or(30),
        )
    }
}

/// The pods of a chart-derived group and the network they live in. Field order
/// matters: processes drop (SIGKILL) before the lab deletes their namespaces.
struct ChartGroup {
    schedulers: BTreeMap<usize, deploy::Proc>,
    executors: Vec<deploy::Proc>,
    lab: deploy::Lab,
    dir: PathBuf,
    /// Each pod ordinal's namespace and address.
    pods: BTreeMap<usize, (String, std::net::Ipv4Addr)>,
    client: String,
    /// `kairos` run in the client namespace with the admin certificate, for the CLI
    /// helpers.
    kairos: PathBuf,
    secrets: Secrets,
    /// Executors started so far (their pod names must differ, as a ReplicaSet's do).
    executors_started: usize,
}

/// Pods the lab has room for: the largest group.
const MAX_PODS: usize = 5;

impl ChartGroup {
    fn new(dir: &Path, first: &Rendering) -> Result<ChartGroup> {
        let secrets = Secrets::new(&dir.join("pki"))?;
        secrets.issue(&first.certificates)?;
        let mut lab = deploy::Lab::new(&dir.join("lab"), "c")?;
        let mut pods = BTreeMap::new();
        for ordinal in 0..MAX_PODS {
            let (ns, addr) = lab.add_host(u8::try_from(ordinal + 1)?)?;
            lab.add_name(
                &format!("{RELEASE}-{ordinal}.{RELEASE}-peers.{NAMESPACE}.svc.cluster.local"),
                addr,
            )?;
            pods.insert(ordinal, (ns, addr));
        }
        // The client Service: here, pod 0 (a ClusterIP would pick any ready one).
        lab.add_name(
            &format!("{RELEASE}.{NAMESPACE}.svc.cluster.local"),
            pods[&0].1,
        )?;
        let (client, _) = lab.add_host(100)?;
        let in_client = lab.wrapper(&client, Path::new(BIN), "kairos-client")?;
        let admin = secrets.secret(&format!("{RELEASE}-admin"));
        let kairos = dir.join("kairos-admin");
        std::fs::write(
            &kairos,
            format!(
                "#!/bin/sh\nexec '{}' --tls-ca '{}' --tls-cert '{}' --tls-key '{}' \"$@\"\n",
                in_client.display(),
                admin.join("ca.crt").display(),
                admin.join("tls.crt").display(),
                admin.join("tls.key").display(),
            ),
        )?;
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&kairos, std::fs::Permissions::from_mode(0o755))?;
        }
        std::fs::create_dir_all(dir.join("logs"))?;
        Ok(ChartGroup {
            schedulers: BTreeMap::new(),
            executors: Vec::new(),
            lab,
            dir: dir.to_path_buf(),
            pods,
            client,
            kairos,
            secrets,
            executors_started: 0,
        })
    }

    fn pod_name(ordinal: usize) -> String {
        format!("{RELEASE}-{ordinal}")
    }

    fn endpoint(ordinal: usize) -> String {
        format!("https://{}", pod_addr(ordinal))
    }

    fn spawn(&self, ns: &str, name: &str, command: &PodCommand) -> Result<deploy::Proc> {
        let mut cmd = self.lab.command(ns, Path::new(BIN));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("KAIROS_") {
                cmd.env_remove(key);
            }
        }
        cmd.args(&command.args)
            .envs(command.env.iter().map(|(k, v)| (k, v)));
        deploy::Proc::spawn(
            name,
            cmd,
            &self.dir.join("logs").join(format!("{name}.log")),
        )
    }

    /// Starts scheduler pod `ordinal` from `rendering` on its volume.
    fn start_scheduler(&mut self, rendering: &Rendering, ordinal: usize) -> Result<()> {
        let pod = Self::pod_name(ordinal);
        let data = self.dir.join("volumes").join(&pod);
        std::fs::create_dir_all(&data)?;
        self.secrets.issue(&rendering.certificates)?;
        let command = pod_command(&rendering.statefulset, &pod, Some(&data), &self.secrets)?;
        let ns = self.pods[&ordinal].0.clone();
        let proc = self.spawn(&ns, &pod, &command)?;
        self.schedulers.insert(ordinal, proc);
        Ok(())
    }

    /// Stops scheduler pod `ordinal` as the kubelet does (SIGTERM, then SIGKILL after
    /// the termination grace) and says how it went.
    fn stop_scheduler(&mut self, rendering: &Rendering, ordinal: usize) -> Result<()> {
        let proc = self
            .schedulers
            .remove(&ordinal)
            .ok_or_else(|| anyhow!("pod {ordinal} is not running"))?;
        let tail = proc.log_tail(20);
        let (by_itself, took) =
            proc.terminate(Rendering::termination_grace(&rendering.statefulset))?;
        ensure!(
            by_itself,
            "{RELEASE}-{ordinal} did not exit within its termination grace after SIGTERM:\n{tail}"
        );
        eprintln!("{RELEASE}-{ordinal} stopped after SIGTERM in {took:?}");
        Ok(())
    }

    /// Starts an executor pod of `rendering`'s Deployment; returns its name.
    fn start_executor(&mut self, rendering: &Rendering) -> Result<String> {
        self.executors_started += 1;
        let pod = format!(
            "{RELEASE}-executor-r{}-{}",
            rendering.replicas, self.executors_started
        );
        self.secrets.issue(&rendering.certificates)?;
        let command = pod_command(&rendering.deployment, &pod, None, &self.secrets)?;
        let client = self.client.clone();
        let proc = self.spawn(&client, &pod, &command)?;
        self.executors.push(proc);
        Ok(pod)
    }

    /// Replaces every executor with one of `rendering`, one at a time, a new one
    /// connected before an old one stops (a Deployment's rolling update with
    /// surge).
    fn roll_executors(&mut self, rendering: &Rendering) -> Result<()> {
        let mut old: std::collections::VecDeque<deploy::Proc> =
            std::mem::take(&mut self.executors).into();
        while let Some(proc) = old.pop_front() {
            self.start_executor(rendering)?;
            let want: BTreeSet<String> = self
                .executors
                .iter()
                .chain(&old)
                .chain(std::iter::once(&proc))
                .map(|p| p.name.clone())
                .collect();
            self.wait_for_executors(&want)?;
            let (by_itself, took) =
                proc.terminate(Rendering::termination_grace(&rendering.deployment))?;
            ensure!(by_itself, "an executor ignored SIGTERM for its whole grace");
            eprintln!("executor stopped after SIGTERM in {took:?}");
        }
        Ok(())
    }

    fn status(&self, ordinal: usize) -> Result<Value> {
        kairos_integration_tests::cli_within(
            &self.kairos,
            &Self::endpoint(ordinal),
            &["cluster", "status", "-o", "json"],
            Duration::from_secs(15),
        )?
        .ok()?
        .json()
    }

    /// The leader the running pods agree on (a majority of them name it, and it
    /// says so of itself).
    fn leader(&self) -> Option<u64> {
        let answers: Vec<(u64, Value)> = self
            .schedulers
            .keys()
            .filter_map(|&o| Some((u64::try_from(o).ok()? + 1, self.status(o).ok()?)))
            .collect();
        agreed_leader(&answers, self.schedulers.len() / 2 + 1)
    }

    /// Waits until the group's voters are exactly `voters`, a leader is agreed, and
    /// the executors connected to it are exactly `executors`.
    fn wait_for_group(&self, voters: &BTreeSet<u64>, executors: &BTreeSet<String>) -> Result<u64> {
        wait_until(
            Duration::from_secs(90),
            &format!("voters {voters:?} with a leader and executors {executors:?}"),
            || {
                let leader = self.leader()?;
                let status = self.status(usize::try_from(leader).ok()? - 1).ok()?;
                let members: BTreeSet<u64> = status["schedulers"]
                    .as_array()?
                    .iter()
                    .map(|s| num(s, "id"))
                    .collect();
                let connected: BTreeSet<String> = status["executors"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|e| num(e, "schedulerId") == leader)
                    .map(|e| field(e, "id").to_string())
                    .collect();
                (members == *voters && connected == *executors).then_some(leader)
            },
        )
        .map_err(|e| self.with_logs(e))
    }

    fn wait_for_executors(&self, executors: &BTreeSet<String>) -> Result<()> {
        let voters = self.voters_now()?;
        self.wait_for_group(&voters, executors).map(|_| ())
    }

    /// The voters the leader reports now.
    fn voters_now(&self) -> Result<BTreeSet<u64>> {
        let leader = wait_until(Duration::from_secs(60), "a leader", || self.leader())
            .map_err(|e| self.with_logs(e))?;
        let status = self.status(usize::try_from(leader)? - 1)?;
        Ok(status["schedulers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| num(s, "id"))
            .collect())
    }

    /// Waits until pod `ordinal` answers 200 to its readiness probe as the kubelet
    /// asks it: the probe's scheme and path, on the pod's IP, certificate not
    /// verified.
    fn wait_ready(&self, rendering: &Rendering, ordinal: usize) -> Result<()> {
        let ip = self.pods[&ordinal].1;
        let curl = tool("curl")?;
        let probe = &container(&rendering.statefulset)?["readinessProbe"]["httpGet"];
        let url = format!(
            "{}://{ip}:8080{}",
            field(probe, "scheme").to_lowercase(),
            field(probe, "path")
        );
        wait_until(
            Duration::from_secs(90),
            &format!("{RELEASE}-{ordinal} to be ready ({url})"),
            || {
                let out = run(
                    self.lab.command(&self.client, &curl).args([
                        "--silent",
                        "--insecure",
                        "--max-time",
                        "5",
                        "--output",
                        "/dev/null",
                        "--write-out",
                        "%{http_code}",
                        &url,
                    ]),
                    Duration::from_secs(10),
                )
                .ok()?;
                (out.stdout.trim() == "200").then_some(())
            },
        )
        .map_err(|e| self.with_logs(e))
    }

    /// A StatefulSet rolling update onto `rendering`: pods from the highest ordinal
    /// down, each stopped, started with the new command and ready before the next.
    fn roll_schedulers(&mut self, rendering: &Rendering) -> Result<()> {
        let ordinals: Vec<usize> = self.schedulers.keys().rev().copied().collect();
        for ordinal in ordinals {
            self.stop_scheduler(rendering, ordinal)?;
            self.start_scheduler(rendering, ordinal)?;
            self.wait_ready(rendering, ordinal)?;
        }
        Ok(())
    }

    fn records(&self, job: &str) -> Result<Vec<Exec>> {
        let leader = wait_until(Duration::from_secs(60), "a leader", || self.leader())
            .map_err(|e| self.with_logs(e))?;
        Exec::parse_all(&all_executions_at(
            &self.kairos,
            &Self::endpoint(usize::try_from(leader)? - 1),
            job,
        )?)
    }

    fn with_logs(&self, e: anyhow::Error) -> anyhow::Error {
        let mut text = format!("{e:#}");
        for proc in self.schedulers.values().chain(&self.executors) {
            text.push_str(&format!("\n--- {} ---\n{}", proc.name, proc.log_tail(15)));
        }
        anyhow!(text)
    }
}

/// The leader named by at least `majority` of `answers` (node id, its status) and
/// claimed by itself (role leader, answered by itself).
fn agreed_leader(answers: &[(u64, Value)], majority: usize) -> Option<u64> {
    let mut named: BTreeMap<u64, usize> = BTreeMap::new();
    let mut claims = BTreeSet::new();
    for (id, status) in answers {
        let leader = num(status, "leaderId");
        if leader == 0 {
            continue;
        }
        *named.entry(leader).or_default() += 1;
        let says_so = status["schedulers"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| num(s, "id") == *id && field(s, "role") == "leader");
        if leader == *id && num(status, "answeredBy") == *id && says_so {
            claims.insert(*id);
        }
    }
    claims
        .into_iter()
        .find(|l| named.get(l).copied().unwrap_or(0) >= majority)
}

/// Waits until the job's run file has `n` lines for instants after `after`.
fn wait_for_runs(group: &ChartGroup, file: &Path, after: DateTime<Utc>, n: usize) -> Result<()> {
    wait_until(
        Duration::from_secs(60),
        &format!("{n} runs after {after}"),
        || {
            let runs = check::read_runs(file).ok()?;
            (runs.iter().filter(|r| r.scheduled_at > after).count() >= n).then_some(())
        },
    )
    .map_err(|e| group.with_logs(e))
}

#[test]
fn the_charts_commands_form_a_group_that_survives_a_kill_and_scales_3_5_3() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let started = Instant::now();
    let three = render(3)?;
    let five = render(5)?;
    let three_again = render(3)?;
    let mut group = ChartGroup::new(dir.path(), &three)?;
    let ids = |n: u64| (1..=n).collect::<BTreeSet<u64>>();

    // Install: three scheduler pods at once (Parallel), two executors.
    for ordinal in 0..3 {
        group.start_scheduler(&three, ordinal)?;
    }
    let e1 = group.start_executor(&three)?;
    let e2 = group.start_executor(&three)?;
    group.wait_for_group(&ids(3), &BTreeSet::from([e1, e2]))?;
    for ordinal in 0..3 {
        group.wait_ready(&three, ordinal)?;
    }
    eprintln!("3 pods ready at {:?}", started.elapsed());

    let job = "tick";
    let runs = dir.path().join("runs");
    let doc = format!(
        "name: {job}\nschedule: \"@every 1s\"\nshell:\n  command: echo \"$KAIROS_SCHEDULED_AT $KAIROS_ATTEMPT $KAIROS_EXECUTION_ID\" >> '{}'\n\
         target:\n  selector: \"role=worker,zone={ZONE}\"\nhistory:\n  keep: 10000\n",
        runs.display()
    );
    let file = write_file(dir.path(), "tick.yaml", &doc)?;
    cli(
        &group.kairos,
        &ChartGroup::endpoint(0),
        &["job", "apply", "-f", &file],
    )?
    .ok()
    .map_err(|e| group.with_logs(e))?;
    wait_for_runs(&group, &runs, Utc::now() - TimeDelta::seconds(3), 3)?;

    // Pod 0, made the leader first, is killed; the others elect a new leader, and
    // the StatefulSet recreates the pod on its volume.
    cli(
        &group.kairos,
        &ChartGroup::endpoint(1),
        &["cluster", "transfer-leader", "1"],
    )?
    .ok()
    .map_err(|e| group.with_logs(e))?;
    let leader = wait_until(Duration::from_secs(30), "node 1 to lead", || {
        group.leader().filter(|&l| l == 1)
    })
    .map_err(|e| group.with_logs(e))?;
    drop(group.schedulers.remove(&0));
    let killed = Utc::now();
    wait_for_runs(&group, &runs, killed + TimeDelta::seconds(1), 3)?;
    group.start_scheduler(&three, 0)?;
    group.wait_ready(&three, 0)?;
    eprintln!(
        "pod 0 (node {leader}, the leader) killed and back, firing went on, at {:?}",
        started.elapsed()
    );

    // 3 → 5: pods 3 and 4 start empty with the longer --peers and join by
    // themselves; then the StatefulSet rolls 2, 1, 0 onto the new template and the
    // Deployment its executors.
    for ordinal in 3..5 {
        group.start_scheduler(&five, ordinal)?;
    }
    for ordinal in 3..5 {
        group.wait_ready(&five, ordinal)?;
    }
    group.wait_for_group(
        &ids(5),
        &group.executors.iter().map(|p| p.name.clone()).collect(),
    )?;
    let grown = Instant::now();
    group.roll_schedulers(&five)?;
    group.roll_executors(&five)?;
    wait_for_runs(&group, &runs, Utc::now(), 2)?;
    eprintln!(
        "grown to 5 and rolled in {:?}, at {:?}",
        grown.elapsed(),
        started.elapsed()
    );

    // 5 → 3: the pre-upgrade hook runs first (with the new size's rendering), then
    // the StatefulSet deletes pods 4 and 3 together, their volumes with them, and
    // rolls the rest; the Deployment rolls its executors.
    let hook = pod_command(&three_again.hook, "hook", None, &group.secrets)?;
    let out = run(
        group
            .lab
            .command(&group.client, Path::new(BIN))
            .args(&hook.args),
        Duration::from_secs(300),
    )?;
    ensure!(
        out.success(),
        "{}",
        group.with_logs(anyhow!("the scale-down hook failed: {out}"))
    );
    ensure!(
        group.voters_now()? == ids(3),
        "after the hook the voters are {:?}",
        group.voters_now()?
    );
    let gone: Vec<deploy::Proc> = [4, 3]
        .iter()
        .filter_map(|o| group.schedulers.remove(o))
        .collect();
    for proc in gone {
        let (by_itself, took) =
            proc.terminate(Rendering::termination_grace(&three_again.statefulset))?;
        ensure!(
            by_itself,
            "a removed pod ignored SIGTERM for its whole grace"
        );
        eprintln!("removed pod stopped after SIGTERM in {took:?}");
    }
    for ordinal in 3..5 {
        std::fs::remove_dir_all(
            group
                .dir
                .join("volumes")
                .join(ChartGroup::pod_name(ordinal)),
        )?;
    }
    group.roll_schedulers(&three_again)?;
    group.roll_executors(&three_again)?;
    let executors: BTreeSet<String> = group.executors.iter().map(|p| p.name.clone()).collect();
    group.wait_for_group(&ids(3), &executors)?;
    wait_for_runs(&group, &runs, Utc::now(), 3)?;
    eprintln!("shrunk to 3 and rolled, at {:?}", started.elapsed());

    // Every instant from the first run to the last one so far: exactly one outcome,
    // and no instant's attempt ran twice.
    let records = wait_until(
        Duration::from_secs(60),
        "every execution up to the last success to be final",
        || {
            let records = group.records(job).ok()?;
            let last = records
                .iter()
                .filter(|e| e.status == "succeeded")
                .map(|e| e.scheduled_at)
                .max()?;
            records
                .iter()
                .filter(|e| e.scheduled_at <= last)
                .all(|e| check::is_final(&e.status))
                .then_some(records)
        },
    )
    .map_err(|e| group.with_logs(e))?;
    let first = records
        .iter()
        .map(|e| e.scheduled_at)
        .min()
        .ok_or_else(|| anyhow!("no executions"))?;
    let last = records
        .iter()
        .filter(|e| e.status == "succeeded")
        .map(|e| e.scheduled_at)
        .max()
        .ok_or_else(|| anyhow!("no success"))?;
    let window = Window {
        first,
        last,
        period: TimeDelta::seconds(1),
    };
    let outcomes = check::check_instants(&records, &window).map_err(|e| group.with_logs(e))?;
    let ran = check::read_runs(&runs)?;
    check::check_runs(
        &records
            .iter()
            .filter(|e| window.contains(e.scheduled_at))
            .cloned()
            .collect::<Vec<_>>(),
        &ran.into_iter()
            .filter(|r| window.contains(r.scheduled_at))
            .collect::<Vec<_>>(),
    )
    .map_err(|e| group.with_logs(e))?;
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    for outcome in outcomes.values() {
        *by_status.entry(outcome.status()).or_default() += 1;
    }
    eprintln!(
        "{} instants, outcomes {by_status:?}, in {:?}",
        outcomes.len(),
        started.elapsed()
    );
    Ok(())
}
