//! The trust store: one pin per service whatever the URL's spelling, checkpoints moved only by
//! compare-and-swap, concurrent writers that lose nothing, and the legacy file migrated.

use std::sync::{Arc, Barrier};

use wasm_hypervisor_protocol::identity::IdentityKey;

use super::*;

fn key(byte: u8) -> IdentityKey {
    IdentityKey::from_secret_bytes(&[byte; 32]).unwrap()
}

fn identity(byte: u8) -> PinnedIdentity {
    let public = key(byte).public();
    PinnedIdentity {
        origin: public.default_origin(),
        key: public,
    }
}

fn signed(byte: u8, size: u64) -> SignedCheckpoint {
    let note = Checkpoint {
        origin: identity(byte).origin,
        size,
        root: [size as u8; 32],
    }
    .sign(&key(byte));
    SignedCheckpoint::verify(&note, &identity(byte)).unwrap()
}

fn url(text: &str) -> ServiceUrl {
    ServiceUrl::parse(text).unwrap()
}

#[test]
fn spellings_of_one_service_url_normalize_to_one() {
    for (spellings, normal) in [
        (
            &[
                "http://127.0.0.1:8080",
                "http://127.0.0.1:8080/",
                "HTTP://127.0.0.1:8080//",
                " http://127.0.0.1:8080 ",
            ][..],
            "http://127.0.0.1:8080/",
        ),
        (
            &["http://Example.COM:80", "http://example.com/"][..],
            "http://example.com/",
        ),
        (
            &["https://example.com:443/", "https://EXAMPLE.com"][..],
            "https://example.com/",
        ),
        (
            &["http://h:1/r/0", "http://h:1/r/0/"][..],
            "http://h:1/r/0/",
        ),
        (&["http://[::1]:8080"][..], "http://[::1]:8080/"),
    ] {
        for spelling in spellings {
            assert_eq!(url(spelling).as_str(), normal, "{spelling}");
        }
    }
    assert_ne!(url("http://h:8080"), url("https://h:8080"));
    assert_ne!(url("http://h:8080"), url("http://h:8081"));
    for invalid in [
        "127.0.0.1:8080",
        "ftp://h/",
        "http://user:pw@h/",
        "http://h/?x=1",
        "http://h/#top",
        "http://",
        "file:///etc/passwd",
        "",
    ] {
        assert!(ServiceUrl::parse(invalid).is_err(), "{invalid}");
    }
}

#[test]
fn two_spellings_of_one_service_share_one_pin() {
    let dir = tempfile::tempdir().unwrap();
    let store = TrustStore::in_dir(dir.path());
    assert!(
        store
            .pin(&url("http://127.0.0.1:8080/"), &identity(1))
            .unwrap()
    );
    assert!(
        !store
            .pin(&url("http://127.0.0.1:8080"), &identity(1))
            .unwrap()
    );
    assert_eq!(
        store.identities(&url("HTTP://127.0.0.1:8080")).unwrap(),
        [identity(1)]
    );
    // So the other spelling does not pin a second identity on first use: it is refused.
    match store.pin(&url("http://127.0.0.1:8080"), &identity(2)) {
        Err(TrustError::IdentityChanged { seen, .. }) => assert_eq!(seen, identity(2).origin),
        other => panic!("a changed identity must be refused, got {other:?}"),
    }
    // The same origin with another key is refused too.
    let impostor = PinnedIdentity {
        origin: identity(1).origin,
        key: identity(2).key,
    };
    assert!(store.pin(&url("http://127.0.0.1:8080"), &impostor).is_err());
    // Another service is another pin.
    assert!(
        store
            .pin(&url("http://127.0.0.1:8081"), &identity(2))
            .unwrap()
    );
    let text = fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["services"].as_object().unwrap().len(), 2);
}

#[test]
fn checkpoints_move_only_by_compare_and_swap() {
    let dir = tempfile::tempdir().unwrap();
    let store = TrustStore::in_dir(dir.path());
    let service = url("http://h:1");
    let (at3, at5) = (signed(1, 3), signed(1, 5));
    assert!(matches!(
        store.compare_and_swap(&service, &identity(1), None, &at3),
        Err(TrustError::NotPinned { .. })
    ));
    store.pin(&service, &identity(1)).unwrap();
    assert_eq!(store.checkpoint(&service, &identity(1)).unwrap(), None);
    assert_eq!(
        store
            .compare_and_swap(&service, &identity(1), None, &at3)
            .unwrap(),
        Swap::Done
    );
    // A run that started before at3 was stored does not overwrite it.
    assert_eq!(
        store
            .compare_and_swap(&service, &identity(1), None, &at5)
            .unwrap(),
        Swap::Changed
    );
    assert_eq!(
        store.checkpoint(&service, &identity(1)).unwrap(),
        Some(at3.clone())
    );
    assert_eq!(
        store
            .compare_and_swap(&service, &identity(1), Some(&at3.checkpoint), &at5)
            .unwrap(),
        Swap::Done
    );
    assert_eq!(
        store.checkpoint(&url("http://h:1/"), &identity(1)).unwrap(),
        Some(at5)
    );
    // Another identity's checkpoint is never kept under this one.
    assert!(
        store
            .compare_and_swap(&service, &identity(1), None, &signed(2, 9))
            .is_err()
    );
}

#[test]
fn concurrent_writers_lose_nothing_and_never_tear_the_file() {
    const WRITERS: usize = 8;
    const SERVICES: usize = 12;
    let dir = tempfile::tempdir().unwrap();
    let barrier = Arc::new(Barrier::new(WRITERS));
    let shared = url("http://shared:1");
    TrustStore::in_dir(dir.path())
        .pin(&shared, &identity(1))
        .unwrap();
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (dir, barrier, shared) =
                (dir.path().to_owned(), Arc::clone(&barrier), shared.clone());
            std::thread::spawn(move || {
                let store = TrustStore::in_dir(&dir);
                barrier.wait();
                for n in 0..SERVICES {
                    let service = url(&format!("http://writer{writer}-{n}:1"));
                    assert!(store.pin(&service, &identity(1)).unwrap());
                    // Every writer tries to move the shared checkpoint forward.
                    let size = (writer * SERVICES + n) as u64 + 1;
                    loop {
                        let current = store.checkpoint(&shared, &identity(1)).unwrap();
                        if current.as_ref().is_some_and(|c| c.checkpoint.size >= size) {
                            break;
                        }
                        let expected = current.as_ref().map(|c| &c.checkpoint);
                        let new = signed(1, size);
                        if store
                            .compare_and_swap(&shared, &identity(1), expected, &new)
                            .unwrap()
                            == Swap::Done
                        {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let store = TrustStore::in_dir(dir.path());
    for writer in 0..WRITERS {
        for service in 0..SERVICES {
            let service = url(&format!("http://writer{writer}-{service}:1"));
            assert_eq!(store.identities(&service).unwrap(), [identity(1)]);
        }
    }
    let largest = (WRITERS * SERVICES) as u64;
    assert_eq!(
        store
            .checkpoint(&shared, &identity(1))
            .unwrap()
            .unwrap()
            .checkpoint
            .size,
        largest
    );
    // No temporary file is left behind.
    let names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        names
            .iter()
            .all(|name| name == FILE_NAME || name == LOCK_NAME),
        "{names:?}"
    );
}

fn legacy(entries: &[(&str, &PinnedIdentity, Option<&SignedCheckpoint>)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|(url, identity, checkpoint)| {
            let mut entry = serde_json::json!({
                "origin": identity.origin,
                "public_key": base64_encode(&identity.key.sec1()),
            });
            if let Some(checkpoint) = checkpoint {
                entry["checkpoint"] = checkpoint.note().into();
            }
            ((*url).to_owned(), entry)
        })
        .collect();
    serde_json::Value::Object(map).to_string()
}

#[test]
fn the_legacy_store_is_migrated_with_its_keys_normalized() {
    let dir = tempfile::tempdir().unwrap();
    let (at2, at5) = (signed(1, 2), signed(1, 5));
    fs::write(
        dir.path().join(LEGACY_NAME),
        legacy(&[
            ("http://127.0.0.1:8080/", &identity(1), Some(&at5)),
            ("http://127.0.0.1:8080", &identity(1), Some(&at2)),
            ("http://other:1", &identity(2), None),
        ]),
    )
    .unwrap();
    let store = TrustStore::in_dir(dir.path());
    let service = url("http://127.0.0.1:8080");
    assert_eq!(store.identities(&service).unwrap(), [identity(1)]);
    assert_eq!(store.checkpoint(&service, &identity(1)).unwrap(), Some(at5));
    assert_eq!(
        store.identities(&url("http://other:1")).unwrap(),
        [identity(2)]
    );
    assert!(dir.path().join(FILE_NAME).exists());
    assert!(dir.path().join(LEGACY_NAME).exists(), "left as it was");

    // Two spellings that pinned two identities are not merged silently.
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join(LEGACY_NAME),
        legacy(&[
            ("http://h:1/", &identity(1), None),
            ("http://h:1", &identity(2), None),
        ]),
    )
    .unwrap();
    let store = TrustStore::in_dir(dir.path());
    assert!(matches!(
        store.identities(&url("http://h:1")),
        Err(TrustError::Corrupt { .. })
    ));
}

#[test]
fn an_edited_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = TrustStore::in_dir(dir.path());
    let service = url("http://h:1");
    store.pin(&service, &identity(1)).unwrap();
    let path = dir.path().join(FILE_NAME);
    let text = fs::read_to_string(&path).unwrap();
    let fingerprint = hex::encode(identity(1).fingerprint());
    fs::write(&path, text.replace(&fingerprint, &"0".repeat(64))).unwrap();
    assert!(matches!(
        store.identities(&service),
        Err(TrustError::Corrupt { .. })
    ));
    fs::write(&path, "{").unwrap();
    assert!(matches!(
        store.pin(&service, &identity(1)),
        Err(TrustError::Corrupt { .. })
    ));
}

fn log(byte: u8, url: Option<&str>) -> PolicyLog {
    PolicyLog {
        identity: identity(byte),
        url: url.map(str::to_owned),
    }
}

#[test]
fn a_policy_is_pinned_on_first_use_and_a_changed_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = TrustStore::in_dir(dir.path());
    let service = url("http://lb:8080");
    let two = Policy::new(vec![
        log(1, Some("http://lb:8080/r/0/")),
        log(2, Some("http://lb:8080/r/1/")),
    ])
    .unwrap();
    assert!(store.policy(&service).unwrap().is_none());
    assert!(store.pin_policy(&service, &two).unwrap());
    assert!(store.policy(&service).unwrap().unwrap().same_logs(&two));
    let reordered = Policy::new(two.logs().iter().rev().cloned().collect()).unwrap();
    assert!(!store.pin_policy(&service, &reordered).unwrap());
    // Each replica's checkpoint is kept apart, and survives a re-pin of the same policy.
    let (first, second) = (signed(1, 3), signed(2, 5));
    store
        .compare_and_swap(&service, &identity(1), None, &first)
        .unwrap();
    store
        .compare_and_swap(&service, &identity(2), None, &second)
        .unwrap();
    assert!(!store.pin_policy(&service, &two).unwrap());
    assert_eq!(
        store.checkpoint(&service, &identity(1)).unwrap(),
        Some(first)
    );
    assert_eq!(
        store.checkpoint(&service, &identity(2)).unwrap(),
        Some(second)
    );
    for changed in [
        Policy::new(vec![log(1, Some("http://lb:8080/r/0/"))]).unwrap(),
        Policy::new(vec![
            log(1, Some("http://lb:8080/r/0/")),
            log(3, Some("http://lb:8080/r/1/")),
        ])
        .unwrap(),
        Policy::new(vec![
            log(1, Some("http://lb:8080/r/0/")),
            log(2, Some("http://elsewhere/")),
        ])
        .unwrap(),
    ] {
        assert!(matches!(
            store.pin_policy(&service, &changed),
            Err(TrustError::PolicyChanged { .. })
        ));
    }
    assert!(store.policy(&service).unwrap().unwrap().same_logs(&two));
}

#[test]
fn an_identity_pinned_by_version_1_is_the_one_log_policy_of_a_standalone_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let pinned = identity(1);
    let version_1 = serde_json::json!({
        "version": 1,
        "services": { "http://h:1/": { "identities": { pinned.origin.clone(): {
            "public_key": base64_encode(&pinned.key.sec1()),
            "fingerprint": hex::encode(pinned.fingerprint()),
            "checkpoint": signed(1, 4).note(),
        } } } }
    });
    fs::write(&path, version_1.to_string()).unwrap();
    let store = TrustStore::in_dir(dir.path());
    let service = url("http://h:1");
    let standalone = Policy::new(vec![log(1, None)]).unwrap();
    assert!(!store.pin_policy(&service, &standalone).unwrap());
    let unchanged: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(unchanged["version"], 1, "reading writes nothing");
    store
        .compare_and_swap(
            &service,
            &pinned,
            Some(&signed(1, 4).checkpoint),
            &signed(1, 4),
        )
        .unwrap();
    let written: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(written["version"], 2);
    let replicated = Policy::new(vec![log(1, Some("http://h:1/r/0/"))]).unwrap();
    assert!(matches!(
        store.pin_policy(&service, &replicated),
        Err(TrustError::PolicyChanged { .. })
    ));
    fs::write(
        &path,
        version_1
            .to_string()
            .replace("\"version\":1", "\"version\":3"),
    )
    .unwrap();
    assert!(matches!(
        store.policy(&service),
        Err(TrustError::Corrupt { .. })
    ));
}
