use std::collections::BTreeMap;
use std::sync::Arc;

use kairos_common::access::{Permission, Role};
use kairos_proto::internal as ipb;
use kairos_tls::{ConnInfo, Identity};

use super::*;
use crate::state::StateView;
use crate::storage::Db;

fn view_with(tokens: &[(&str, &str, NewToken)]) -> (tempfile::TempDir, Arc<StateView>) {
    let dir = tempfile::tempdir().unwrap();
    let view = StateView::new(Arc::new(Db::open(dir.path()).unwrap()));
    let map: BTreeMap<String, ipb::TokenRecord> = tokens
        .iter()
        .map(|(name, role, t)| {
            (
                t.id.clone(),
                ipb::TokenRecord {
                    id: t.id.clone(),
                    name: name.to_string(),
                    role: role.to_string(),
                    secret_sha256: t.secret_sha256.clone(),
                    ..Default::default()
                },
            )
        })
        .collect();
    view.set_tokens(map);
    (dir, view)
}

fn bearer(token: &str) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    h
}

fn cert(role: &str, name: &str) -> ConnInfo {
    ConnInfo {
        remote: None,
        tls: true,
        peer: Some(Identity {
            role: role.into(),
            name: name.into(),
        }),
    }
}

#[test]
fn a_token_is_its_holders_role_until_it_is_revoked() {
    let ci = mint();
    let (_dir, view) = view_with(&[("ci", "operator", ci.clone())]);
    let auth = Authenticator::new(view.clone(), true);
    let who = auth.authenticate(&bearer(&ci.token), None).unwrap();
    assert_eq!(
        (who.role, who.name.as_str(), who.via),
        (Role::Operator, "ci", Via::Token)
    );

    // The same id with another secret proves nothing.
    let forged = format!("kairos_{}_{}", ci.id, "0".repeat(64));
    assert!(matches!(
        auth.authenticate(&bearer(&forged), None),
        Err(Refusal::Unauthenticated(_))
    ));
    // Revoked: the view no longer has it.
    view.set_tokens(BTreeMap::new());
    assert!(matches!(
        auth.authenticate(&bearer(&ci.token), None),
        Err(Refusal::Unauthenticated(why)) if why.contains("revoked")
    ));
}

#[test]
fn a_certificate_is_its_holders_role_and_nothing_is_nobody() {
    let (_dir, view) = view_with(&[]);
    let auth = Authenticator::new(view, true);
    let who = auth
        .authenticate(&http::HeaderMap::new(), Some(&cert("executor", "web-1")))
        .unwrap();
    assert_eq!((who.role, who.via), (Role::Executor, Via::Certificate));
    assert!(matches!(
        auth.authenticate(&http::HeaderMap::new(), Some(&cert("root", "x"))),
        Err(Refusal::Unauthenticated(why)) if why.contains("root")
    ));
    assert!(matches!(
        auth.authenticate(&http::HeaderMap::new(), None),
        Err(Refusal::Unauthenticated(why)) if why.contains("no credentials")
    ));
}

#[test]
fn only_a_scheduler_may_speak_for_another_caller() {
    let (_dir, view) = view_with(&[]);
    let auth = Authenticator::new(view, true);
    let mut headers = http::HeaderMap::new();
    headers.insert(ON_BEHALF_OF_METADATA_KEY, "operator:ci".parse().unwrap());
    let forwarded = auth
        .authenticate(&headers, Some(&cert("scheduler", "2")))
        .unwrap();
    assert_eq!(
        (forwarded.role, forwarded.name.as_str(), forwarded.via),
        (Role::Operator, "ci", Via::Forwarded)
    );
    let ignored = auth
        .authenticate(&headers, Some(&cert("viewer", "bob")))
        .unwrap();
    assert_eq!(
        (ignored.role, ignored.via),
        (Role::Viewer, Via::Certificate)
    );
}

#[test]
fn refusals_name_the_missing_permission_and_open_mode_lets_all_in() {
    let (_dir, view) = view_with(&[]);
    let auth = Authenticator::new(view.clone(), true);
    let viewer = Principal {
        role: Role::Viewer,
        name: "bob".into(),
        via: Via::Certificate,
    };
    match auth.authorize(&viewer, Permission::Write, "/kairos.v1.JobService/PutJob") {
        Err(Refusal::PermissionDenied(why)) => {
            assert!(
                why.contains("viewer:bob") && why.contains("write") && why.contains("PutJob"),
                "{why}"
            )
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(auth.authorize(&viewer, Permission::Read, "x").is_ok());
    assert!(auth.authorize(&viewer, Permission::Open, "x").is_ok());
    let open = Authenticator::new(view, false);
    let anyone = open.authenticate(&http::HeaderMap::new(), None).unwrap();
    assert_eq!((anyone.role, anyone.via), (Role::Admin, Via::Open));
    for permission in [Permission::Admin, Permission::Executor, Permission::Peer] {
        assert!(
            open.authorize(&anyone, permission, "x").is_ok(),
            "open mode lets anyone use what needs {permission}"
        );
        assert!(
            auth.authorize(&anyone, permission, "x").is_ok() == (permission == Permission::Admin)
        );
    }
}

#[test]
fn an_executor_certificate_covers_its_own_name_or_its_pool() {
    assert!(certificate_covers_executor("web-1", "web-1"));
    assert!(!certificate_covers_executor("web-1", "web-10"));
    assert!(!certificate_covers_executor("web-1", "web-"));
    // A pool certificate: any name with its prefix and something after it.
    assert!(certificate_covers_executor(
        "kairos-executor-*",
        "kairos-executor-7d9f-x2kq"
    ));
    assert!(!certificate_covers_executor(
        "kairos-executor-*",
        "kairos-executor-"
    ));
    assert!(!certificate_covers_executor("kairos-executor-*", "web-1"));
    // A lone `*` would be every executor: refused.
    assert!(!certificate_covers_executor("*", "web-1"));
}
