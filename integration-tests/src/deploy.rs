//! Plumbing of the deploy tests (`tests/deploy.rs`): the tools they run, commands
//! bounded in time, and a container engine of the test's own.
//!
//! # Tools
//! `scripts/setup-test-deps` installs what the tests run: Debian packages (podman,
//! buildah, runc, netavark, podman-compose, mmdebstrap, systemd) and, in the tool
//! directory `target/tools` under the repository (`KAIROS_TOOLS_DIR` overrides it),
//! pinned copies of helm, kubectl, kubernetes-validate, trivy and hadolint. [`tool`]
//! looks in the tool directory's `bin/` first, then on `PATH`, and fails naming the
//! script when a tool is missing: a missing tool is a failure, never a skip.
//!
//! # The container engine
//! [`Engine`] is rootful podman confined to one directory: its own
//! `containers.conf`, storage (images, containers, volumes), registries (none: an
//! image is never pulled), network configuration, runtime state and locks, all given
//! through `CONTAINERS_CONF`, `CONTAINERS_STORAGE_CONF` and
//! `CONTAINERS_REGISTRIES_CONF`. Nothing of the machine's own podman is read or
//! touched, but for the image library's cache of layer digests, which podman as
//! root always keeps in /var/lib/containers/cache (no setting moves it). Dropping the engine removes every container (SIGKILL), network and
//! volume it made and unmounts whatever is left under its directory, so the test's
//! temporary directory can go, on success and on failure alike.
//!
//! This machine kind needs two settings podman does not default to: `runc` (crun
//! refuses its hybrid cgroup layout) and default ulimits within the limits the
//! test process has (podman's default `nofile` is above them, and runc then fails
//! to start any container).

use std::io::Read as _;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::wait_until;

/// The script that installs every tool these tests run.
pub const SETUP: &str = "scripts/setup-test-deps";

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("invariant: integration-tests/ lives in the repository root")
        .to_path_buf()
}

/// Where `scripts/setup-test-deps` installs the tools it does not take from Debian.
pub fn tools_dir() -> PathBuf {
    match std::env::var_os("KAIROS_TOOLS_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => repo_root().join("target").join("tools"),
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The path of tool `name`: the tool directory's `bin/` first, then `PATH`. Fails,
/// naming the set-up script, when it is in neither.
pub fn tool(name: &str) -> Result<PathBuf> {
    let own = tools_dir().join("bin").join(name);
    if is_executable(&own) {
        return Ok(own);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    bail!(
        "`{name}` is not installed (looked in {} and on PATH): run {SETUP}",
        tools_dir().join("bin").display()
    )
}

/// What a command printed and how it ended.
#[derive(Debug, Clone)]
pub struct Output {
    /// What ran, for messages.
    pub command: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Fails unless the command exited 0, with everything it printed.
    pub fn ok(self) -> Result<Output> {
        if self.success() {
            Ok(self)
        } else {
            Err(anyhow!("{self}"))
        }
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` exited with {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command,
            self.code,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

/// Runs `cmd` (stdin closed, output captured) and waits at most `deadline` for it;
/// kills it and fails past that.
pub fn run(cmd: &mut Command, deadline: Duration) -> Result<Output> {
    let command = describe(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning `{command}`"))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let status = wait_until(deadline, &format!("`{command}` to exit"), || {
        child.try_wait().ok().flatten()
    });
    let status = match status {
        Ok(s) => s,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = err_reader.join().unwrap_or_default();
            return Err(e.context(format!("killed it; its stderr: {}", stderr.trim_end())));
        }
    };
    Ok(Output {
        command,
        code: status.code(),
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    })
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The effective user id of this process (from /proc, without a libc binding).
pub fn euid() -> Result<u32> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .ok_or_else(|| anyhow!("no Uid line in /proc/self/status"))?;
    line.split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow!("short Uid line {line:?}"))?
        .parse()
        .context("Uid in /proc/self/status")
}

/// The hard limit on open files of this process: a container may have no more.
fn hard_nofile() -> Result<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits")?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .ok_or_else(|| anyhow!("no open files line in /proc/self/limits"))?;
    let hard = line
        .split_whitespace()
        .nth(4)
        .ok_or_else(|| anyhow!("short line {line:?}"))?;
    Ok(if hard == "unlimited" {
        u64::MAX
    } else {
        hard.parse().context("hard open files limit")?
    })
}

/// A loopback address of its own (`127.X.Y.Z`, chosen at random, clear of
/// 127.0.0.x) with `n` ports the kernel picked free there. The listeners are
/// released on return (the engine must bind them itself); the address being one
/// nobody else uses is what keeps them free meanwhile.
pub fn loopback_ports(n: usize) -> Result<(Ipv4Addr, Vec<u16>)> {
    use std::hash::{BuildHasher as _, Hasher as _};
    // Bounded: an address where binding fails is skipped.
    for attempt in 0..20_usize {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(attempt);
        let r = h.finish().to_le_bytes();
        let ip = Ipv4Addr::new(127, 1 + r[0] % 254, r[1], r[2].max(1));
        let listeners: Vec<TcpListener> = match (0..n).map(|_| TcpListener::bind((ip, 0))).collect()
        {
            Ok(l) => l,
            Err(_) => continue,
        };
        let ports = listeners
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect::<std::io::Result<Vec<u16>>>()?;
        return Ok((ip, ports));
    }
    bail!("could not find a free loopback address with {n} free ports")
}

/// How long one engine command may take (a build of the image copies a 100+ MB
/// binary; a compose `up` starts five containers).
pub const ENGINE_DEADLINE: Duration = Duration::from_secs(300);

/// Rootful podman confined to one directory (see the module essay).
pub struct Engine {
    dir: PathBuf,
    podman: PathBuf,
    env: Vec<(String, PathBuf)>,
}

impl Engine {
    /// Sets up an engine under `dir` (created; the caller removes it after the
    /// engine is dropped). Needs root: rootless podman needs user namespaces with
    /// subordinate ids, which this project's machines do not set up.
    pub fn new(dir: &Path) -> Result<Engine> {
        let podman = tool("podman")?;
        tool("runc")?;
        tool("mmdebstrap")?;
        // Bridge networks with name resolution; podman keeps both off PATH.
        for helper in ["/usr/lib/podman/netavark", "/usr/lib/podman/aardvark-dns"] {
            if !is_executable(Path::new(helper)) {
                bail!("{helper} is not installed: run {SETUP}");
            }
        }
        if euid()? != 0 {
            bail!(
                "the container tests run rootful podman and need root (run the tests as root; \
                 {SETUP} installs the engine)"
            );
        }
        for sub in ["storage", "run", "tmp", "libpod", "networks"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let nofile = hard_nofile()?.min(65_536);
        let path = |p: &str| dir.join(p).display().to_string();
        let containers_conf = format!(
            "# Written by the deploy tests: an engine confined to {dir}.\n\
             [containers]\n\
             # Within this process's limits: runc cannot raise a limit, and podman's\n\
             # defaults are above them here.\n\
             default_ulimits = [\"nofile={nofile}:{nofile}\", \"nproc=4096:4096\"]\n\
             [engine]\n\
             # crun refuses this machine kind's hybrid cgroup layout.\n\
             runtime = \"runc\"\n\
             cgroup_manager = \"cgroupfs\"\n\
             events_logger = \"file\"\n\
             events_logfile_path = \"{events}\"\n\
             tmp_dir = \"{libpod}\"\n\
             lock_type = \"file\"\n\
             image_copy_tmp_dir = \"{tmp}\"\n\
             [network]\n\
             network_backend = \"netavark\"\n\
             network_config_dir = \"{networks}\"\n",
            dir = dir.display(),
            events = path("events.log"),
            libpod = path("libpod"),
            tmp = path("tmp"),
            networks = path("networks"),
        );
        let storage_conf = format!(
            "[storage]\ndriver = \"overlay\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
            path("storage"),
            path("run")
        );
        // No registry at all: every image is built or imported here.
        let registries_conf =
            "unqualified-search-registries = []\nshort-name-mode = \"disabled\"\n";
        std::fs::write(dir.join("containers.conf"), containers_conf)?;
        std::fs::write(dir.join("storage.conf"), storage_conf)?;
        std::fs::write(dir.join("registries.conf"), registries_conf)?;
        Ok(Engine {
            dir: dir.to_path_buf(),
            podman,
            env: vec![
                ("CONTAINERS_CONF".into(), dir.join("containers.conf")),
                ("CONTAINERS_STORAGE_CONF".into(), dir.join("storage.conf")),
                (
                    "CONTAINERS_REGISTRIES_CONF".into(),
                    dir.join("registries.conf"),
                ),
                ("TMPDIR".into(), dir.join("tmp")),
            ],
        })
    }

    /// The directory the engine keeps everything in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A command for `program` (podman, podman-compose, …) in this engine's
    /// environment.
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        cmd
    }

    /// Runs `podman args…` (bounded by [`ENGINE_DEADLINE`]), whatever its outcome.
    pub fn podman_output(&self, args: &[&str]) -> Result<Output> {
        run(self.command(&self.podman).args(args), ENGINE_DEADLINE)
    }

    /// Runs `podman args…` and fails unless it succeeded.
    pub fn podman(&self, args: &[&str]) -> Result<Output> {
        self.podman_output(args)?.ok()
    }

    /// Builds a Debian 12 root file system from Debian's packages with mmdebstrap
    /// (the minbase variant: essential packages, apt and the required ones, as
    /// debian:bookworm-slim has, without documentation) and imports it as
    /// `docker.io/library/debian:bookworm-slim`, so that a Dockerfile's
    /// `FROM debian:bookworm-slim` resolves here without a registry.
    pub fn import_debian_base(&self) -> Result<()> {
        let tar = self.dir.join("tmp").join("bookworm-slim.tar");
        let mmdebstrap = tool("mmdebstrap")?;
        run(
            Command::new(mmdebstrap)
                .args([
                    "--quiet",
                    "--variant=minbase",
                    "--mode=root",
                    "--format=tar",
                    "--dpkgopt=force-unsafe-io",
                    "--dpkgopt=path-exclude=/usr/share/man/*",
                    "--dpkgopt=path-exclude=/usr/share/doc/*",
                    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
                    "--dpkgopt=path-exclude=/usr/share/locale/*",
                    "bookworm",
                ])
                .arg(&tar)
                .env("TMPDIR", self.dir.join("tmp")),
            Duration::from_secs(600),
        )?
        .ok()
        .context("building the Debian base with mmdebstrap")?;
        let imported = self.podman(&[
            "import",
            "--quiet",
            &tar.display().to_string(),
            "docker.io/library/debian:bookworm-slim",
        ]);
        let _ = std::fs::remove_file(&tar);
        imported.map(|_| ())
    }

    /// Removes every container (SIGKILL), pod, network and volume of this engine.
    pub fn remove_everything(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for args in [
            &["rm", "--all", "--force", "--time", "0"][..],
            &["pod", "rm", "--all", "--force"][..],
            &["network", "prune", "--force"][..],
            &["volume", "prune", "--force"][..],
        ] {
            match self.podman_output(args) {
                Ok(out) if out.success() => {}
                Ok(out) => problems.push(out.to_string()),
                Err(e) => problems.push(format!("{e:#}")),
            }
        }
        problems
    }

    /// Mount points under the engine's directory (overlay mounts left behind).
    fn mounts_inside(&self) -> Vec<PathBuf> {
        let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
            return Vec::new();
        };
        let mut mounts: Vec<PathBuf> = info
            .lines()
            .filter_map(|l| l.split_whitespace().nth(4))
            .map(PathBuf::from)
            .filter(|p| p.starts_with(&self.dir))
            .collect();
        // Deepest first.
        mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        mounts
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let problems = self.remove_everything();
        if !problems.is_empty() {
            eprintln!("engine clean-up: {}", problems.join("\n"));
        }
        let end = Instant::now() + Duration::from_secs(30);
        for mount in self.mounts_inside() {
            let left = end.saturating_duration_since(Instant::now());
            let _ = run(
                Command::new("umount").arg("--lazy").arg(&mount),
                left.max(Duration::from_secs(1)),
            );
        }
        // The images and volumes are files in the storage directory: remove them
        // now, so that nothing outlives the test even when the caller keeps its
        // directory.
        let _ = std::fs::remove_dir_all(self.dir.join("storage"));
    }
}

/// A little network of hosts for the processes a Kubernetes rendering describes:
/// one network namespace per host, all on a bridge in a hub namespace, none of it
/// in the machine's own network namespace; and one `hosts` file mapping names (the
/// pods' and Services' DNS names) to those hosts, which every process started
/// through [`Lab::command`] sees as its `/etc/hosts` (a bind mount in a mount
/// namespace of its own). Dropping the lab deletes the namespaces; the processes
/// in them must be gone by then (drop them first).
pub struct Lab {
    prefix: String,
    hub: String,
    hosts_file: PathBuf,
    run_script: PathBuf,
    hosts: Vec<String>,
    names: Vec<(String, Ipv4Addr)>,
}

/// The lab's subnet, which exists only inside its namespaces.
const LAB_NET: [u8; 3] = [10, 213, 0];

impl Lab {
    /// Creates the hub under a name unique to this process (needs root and `ip`).
    pub fn new(dir: &Path, tag: &str) -> Result<Lab> {
        tool("ip")?;
        tool("unshare")?;
        if euid()? != 0 {
            bail!("network namespaces need root (run the tests as root)");
        }
        let prefix = format!("kd{}{tag}", std::process::id());
        let hub = format!("{prefix}-hub");
        std::fs::create_dir_all(dir)?;
        let hosts_file = dir.join("hosts");
        let run_script = dir.join("netns-run");
        // netns-run NETNS PROGRAM ARGS…: PROGRAM in NETNS, seeing the lab's hosts
        // file as /etc/hosts. unshare, sh and `ip netns exec` all exec, so the pid
        // of the spawned child is PROGRAM's own: signals reach it directly.
        std::fs::write(
            &run_script,
            format!(
                "#!/bin/sh\nexec unshare --mount --propagation private -- /bin/sh -c \
                 'mount --bind \"$0\" /etc/hosts && exec ip netns exec \"$@\"' '{}' \"$@\"\n",
                hosts_file.display()
            ),
        )?;
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&run_script, std::fs::Permissions::from_mode(0o755))?;
        }
        let mut lab = Lab {
            prefix,
            hub: hub.clone(),
            hosts_file,
            run_script,
            hosts: Vec::new(),
            names: Vec::new(),
        };
        lab.write_hosts()?;
        lab.ip(&["netns", "add", &hub])?;
        lab.hosts.push(hub.clone());
        lab.ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        lab.ip(&["-n", &hub, "link", "set", "br0", "up"])?;
        Ok(lab)
    }

    fn ip(&self, args: &[&str]) -> Result<Output> {
        run(Command::new("ip").args(args), Duration::from_secs(30))?.ok()
    }

    /// Adds host number `n` (1–200): a namespace with address 10.213.0.(n + 10) on
    /// the bridge. Returns the namespace's name and the address.
    pub fn add_host(&mut self, n: u8) -> Result<(String, Ipv4Addr)> {
        ensure_small(n)?;
        let ns = format!("{}-{n}", self.prefix);
        let addr = Ipv4Addr::new(LAB_NET[0], LAB_NET[1], LAB_NET[2], n + 10);
        self.ip(&["netns", "add", &ns])?;
        self.hosts.push(ns.clone());
        let port = format!("p{n}");
        self.ip(&[
            "-n", &self.hub, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
            &ns,
        ])?;
        self.ip(&["-n", &self.hub, "link", "set", &port, "master", "br0", "up"])?;
        self.ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ])?;
        self.ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        self.ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        Ok((ns, addr))
    }

    /// Makes `name` resolve to `addr` for every process of the lab.
    pub fn add_name(&mut self, name: &str, addr: Ipv4Addr) -> Result<()> {
        self.names.push((name.to_string(), addr));
        self.write_hosts()
    }

    fn write_hosts(&self) -> Result<()> {
        let mut text = String::from("127.0.0.1 localhost\n::1 localhost\n");
        for (name, addr) in &self.names {
            text.push_str(&format!("{addr} {name}\n"));
        }
        // Rewritten in place: the bind mounts of running processes keep the inode.
        std::fs::write(&self.hosts_file, text)?;
        Ok(())
    }

    /// A command running `program` in namespace `ns` with the lab's names.
    pub fn command(&self, ns: &str, program: &Path) -> Command {
        let mut cmd = Command::new(&self.run_script);
        cmd.arg(ns).arg(program);
        cmd
    }

    /// A script that runs `program` with its arguments in namespace `ns` (for
    /// helpers that take the path of a binary to run).
    pub fn wrapper(&self, ns: &str, program: &Path, name: &str) -> Result<PathBuf> {
        use std::os::unix::fs::PermissionsExt as _;
        let path = self
            .hosts_file
            .parent()
            .expect("invariant: the hosts file is in the lab's directory")
            .join(name);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\nexec '{}' '{ns}' '{}' \"$@\"\n",
                self.run_script.display(),
                program.display()
            ),
        )?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        Ok(path)
    }
}

fn ensure_small(n: u8) -> Result<()> {
    if n == 0 || n > 200 {
        bail!("lab host numbers go from 1 to 200, not {n}");
    }
    Ok(())
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of every veth pair, and the bridge.
        for ns in self.hosts.iter().rev() {
            let _ = run(
                Command::new("ip").args(["netns", "delete", ns]),
                Duration::from_secs(30),
            );
        }
    }
}

/// A process the test started; SIGKILLed (and reaped) when dropped.
pub struct Proc {
    pub name: String,
    child: std::process::Child,
    pub log: PathBuf,
}

impl Proc {
    /// Spawns `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Proc> {
        use std::io::Write as _;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        writeln!(file, "--- starting {} ---", describe(&cmd))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("spawning {name}"))?;
        Ok(Proc {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
        })
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then waits up to `grace` for it to exit (then SIGKILL, as a kubelet
    /// does). Returns whether it exited by itself and how long it took.
    pub fn terminate(mut self, grace: Duration) -> Result<(bool, Duration)> {
        let started = Instant::now();
        let pid = self.child.id().to_string();
        run(
            Command::new("kill").args(["-TERM", &pid]),
            Duration::from_secs(10),
        )?
        .ok()?;
        let exited = wait_until(
            grace,
            &format!("{} to exit after SIGTERM", self.name),
            || self.child.try_wait().ok().flatten(),
        );
        let by_itself = exited.is_ok();
        let _ = self.child.kill();
        let _ = self.child.wait();
        Ok((by_itself, started.elapsed()))
    }

    /// The last `n` lines it logged.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
