//! Authentication and authorization over real gRPC: tokens raw or Bearer, checked before the
//! uid is looked at (no uid oracle), session ownership, identity allow-list.

mod common;

use common::{Harness, temp_dir, test_config};
use control::auth::static_tokens::StaticTokens;
use tonic::Code;

fn token_config(allowed: &[&str]) -> control::config::Config {
    let dir = temp_dir(&format!("auth-{}", allowed.len()));
    let file = dir.join("tokens");
    let body = [
        ("alice", "tok-alice"),
        ("bob", "tok-bob"),
        ("carol", "tok-carol"),
    ]
    .iter()
    .map(|(i, t)| StaticTokens::entry(i, t))
    .collect::<Vec<_>>()
    .join("\n");
    std::fs::write(&file, body).unwrap();
    let mut cfg = test_config(4);
    cfg.no_auth = false;
    cfg.token_file = Some(file);
    cfg.allowed_identities = allowed.iter().map(|s| s.to_string()).collect();
    cfg
}

#[tokio::test]
async fn tokens_are_checked_before_the_uid_and_owners_are_enforced() {
    let h = Harness::start(token_config(&[])).await;
    let alice = h.client(Some("tok-alice")).await;
    let alice_bearer = h.client(Some("Bearer tok-alice")).await;
    let bob = h.client(Some("tok-bob")).await;
    let nobody = h.client(None).await;
    let forger = h.client(Some("tok-forged")).await;

    alice.open("uid-alice", "PROD", 2, &["127.0.0.1:1"]).await;

    // Without a valid token the answer is the same whether the uid exists or not.
    for uid in ["uid-alice", "uid-nonexistent"] {
        let e = nobody.status(uid).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{uid}");
        assert!(e.message().contains("missing"), "{}", e.message());
        let e = forger.release(uid).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{uid}");
        assert!(e.message().contains("invalid"), "{}", e.message());
        assert_eq!(
            nobody
                .update(uid, "PROD", &["127.0.0.1:1"])
                .await
                .unwrap_err()
                .code(),
            Code::Unauthenticated
        );
        assert_eq!(
            forger.hello(uid, "PROD", &[]).await.unwrap_err().code(),
            Code::Unauthenticated
        );
        assert_eq!(
            nobody.req(uid, "PROD", 1).await.unwrap_err().code(),
            Code::Unauthenticated
        );
    }

    // Another user's session looks exactly like an unknown one.
    let theirs = bob.release("uid-alice").await.unwrap_err();
    let unknown = bob.release("uid-nonexistent").await.unwrap_err();
    assert_eq!(theirs.code(), Code::NotFound);
    assert_eq!(
        (theirs.code(), theirs.message()),
        (unknown.code(), unknown.message())
    );
    assert_eq!(
        bob.update("uid-alice", "PROD", &["127.0.0.1:1"])
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(
        bob.status("uid-alice").await.unwrap_err().code(),
        Code::NotFound
    );
    assert!(bob.list().await.unwrap().sessions.is_empty());

    // The owner, with or without the Bearer prefix, can use it.
    assert_eq!(
        alice_bearer.status("uid-alice").await.unwrap().state,
        "ready"
    );
    assert_eq!(alice.list().await.unwrap().sessions.len(), 1);
    alice_bearer.release("uid-alice").await.unwrap();
    h.stop().await;
}

#[tokio::test]
async fn identities_outside_the_allow_list_are_permission_denied() {
    let h = Harness::start(token_config(&["alice"])).await;
    let carol = h.client(Some("tok-carol")).await;
    let e = carol.req("uid-carol", "PROD", 1).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("carol"), "{}", e.message());
    let alice = h.client(Some("tok-alice")).await;
    alice.open("uid-a", "PROD", 1, &["127.0.0.1:1"]).await;
    h.stop().await;
}
