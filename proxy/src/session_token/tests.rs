//! Session tokens: round trips, tampering, expiry, size, and garbage that must never panic.

use super::*;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-secret";
const NOW: u64 = 1_800_000_000;

fn sealer() -> SessionSealer {
    SessionSealer::new(SECRET).expect("secret is long enough")
}

fn uuid(i: usize) -> String {
    format!(
        "{:08x}-7b3c-4d2e-9f10-{:012x}",
        0x1234_5678 + i,
        0xabcdef + i
    )
}

fn claims(upstreams: usize) -> SessionClaims {
    SessionClaims {
        session_uid: SessionClaims::new_session_uid(),
        gateway: "engineering".into(),
        protocol_version: "2025-06-18".into(),
        client_capabilities: br#"{"roots":{"listChanged":true},"sampling":{},"elicitation":{}}"#
            .to_vec(),
        expires_at: NOW + 3600,
        upstream_sessions: (0..upstreams)
            .map(|i| UpstreamSession {
                server: format!("server-{i}"),
                session_id: uuid(i),
                protocol_version: "2025-06-18".into(),
            })
            .collect(),
    }
}

#[test]
fn sealed_claims_open_to_the_same_claims() {
    for upstreams in [0, 1, 10] {
        let claims = claims(upstreams);
        let token = sealer().seal(&claims).expect("seal");
        assert_eq!(sealer().open(&token, NOW), Ok(claims));
    }
    let empty = SessionClaims {
        session_uid: [0; 16],
        gateway: String::new(),
        protocol_version: String::new(),
        client_capabilities: Vec::new(),
        expires_at: u64::MAX,
        upstream_sessions: Vec::new(),
    };
    let token = sealer().seal(&empty).expect("seal");
    assert_eq!(sealer().open(&token, u64::MAX - 1), Ok(empty));
}

#[test]
fn token_is_header_safe_ascii() {
    let token = sealer().seal(&claims(3)).expect("seal");
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    assert!(http::HeaderValue::from_str(&token).is_ok());
}

#[test]
fn two_seals_of_the_same_claims_differ() {
    let claims = claims(2);
    let (a, b) = (
        sealer().seal(&claims).expect("seal"),
        sealer().seal(&claims).expect("seal"),
    );
    assert_ne!(a, b);
    assert_eq!(sealer().open(&a, NOW), sealer().open(&b, NOW));
}

#[test]
fn any_changed_character_is_refused() {
    let token = sealer().seal(&claims(1)).expect("seal");
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for at in 0..token.len() {
        for &replacement in [b'A', b'f', b'-', b'_', b'9']
            .iter()
            .chain(alphabet.iter().step_by(7))
        {
            let mut bytes = token.clone().into_bytes();
            if bytes[at] == replacement {
                continue;
            }
            bytes[at] = replacement;
            let tampered = String::from_utf8(bytes).expect("ascii");
            assert!(
                sealer().open(&tampered, NOW).is_err(),
                "char {at} -> {}",
                replacement as char
            );
        }
    }
}

#[test]
fn any_flipped_bit_in_the_sealed_bytes_is_refused() {
    let token = sealer().seal(&claims(1)).expect("seal");
    let raw = URL_SAFE_NO_PAD.decode(&token).expect("base64");
    for at in 0..raw.len() {
        for bit in 0..8 {
            let mut edited = raw.clone();
            edited[at] ^= 1 << bit;
            let result = sealer().open(&URL_SAFE_NO_PAD.encode(&edited), NOW);
            let expected = if at == 0 {
                SessionTokenError::UnsupportedVersion
            } else {
                SessionTokenError::Tampered
            };
            assert_eq!(result, Err(expected), "byte {at} bit {bit}");
        }
    }
}

#[test]
fn token_from_another_secret_is_tampered() {
    let token = sealer().seal(&claims(1)).expect("seal");
    let other = SessionSealer::new(b"another secret that is long enough!!").expect("secret");
    assert_eq!(other.open(&token, NOW), Err(SessionTokenError::Tampered));
}

#[test]
fn expired_token_is_refused() {
    let claims = claims(0);
    let token = sealer().seal(&claims).expect("seal");
    assert!(sealer().open(&token, claims.expires_at - 1).is_ok());
    assert_eq!(
        sealer().open(&token, claims.expires_at),
        Err(SessionTokenError::Expired)
    );
    assert_eq!(
        sealer().open(&token, u64::MAX),
        Err(SessionTokenError::Expired)
    );
}

#[test]
fn short_secret_is_refused_and_debug_hides_the_key() {
    assert_eq!(
        SessionSealer::new(&[7; 31]).err(),
        Some(SessionTokenError::SecretTooShort)
    );
    assert_eq!(
        SessionSealer::new(b"").err(),
        Some(SessionTokenError::SecretTooShort)
    );
    let shown = format!("{:?}", sealer());
    assert_eq!(shown, "SessionSealer { key: *** }");
    let claims = claims(1);
    let shown = format!("{claims:?}");
    assert!(
        !shown.contains(&claims.upstream_sessions[0].session_id),
        "{shown}"
    );
}

#[test]
fn oversized_input_is_refused_before_decoding() {
    let long = "A".repeat(MAX_TOKEN_LEN + 1);
    assert_eq!(sealer().open(&long, NOW), Err(SessionTokenError::TooLarge));
    let mut huge = claims(0);
    huge.client_capabilities = vec![b' '; MAX_TOKEN_LEN];
    assert_eq!(sealer().seal(&huge), Err(SessionTokenError::TooLarge));
    // The largest claims seal accepts still open.
    let fits = (0..MAX_TOKEN_LEN)
        .rev()
        .find_map(|n| {
            let mut c = claims(0);
            c.client_capabilities = vec![b'x'; n];
            sealer().seal(&c).ok().map(|t| (t, c))
        })
        .expect("some size fits");
    assert!(fits.0.len() <= MAX_TOKEN_LEN);
    assert_eq!(sealer().open(&fits.0, NOW), Ok(fits.1));
}

#[test]
fn garbage_and_truncated_tokens_never_panic() {
    let token = sealer().seal(&claims(2)).expect("seal");
    for end in 0..token.len() {
        assert!(sealer().open(&token[..end], NOW).is_err(), "prefix {end}");
    }
    for garbage in [
        "",
        "=",
        "====",
        "!!!!",
        "AAAA",
        "AQ",
        "é",
        "a b",
        "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        assert!(sealer().open(garbage, NOW).is_err(), "{garbage}");
    }
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..2000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let len = (state % 200) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|i| (state.rotate_left(i as u32) & 0xff) as u8)
            .collect();
        let _ = sealer().open(&URL_SAFE_NO_PAD.encode(&bytes), NOW);
    }
}

#[test]
fn decoder_refuses_corrupt_plaintext_without_panicking() {
    let claims = claims(3);
    let mut encoded = Vec::new();
    codec::encode(&claims, &mut encoded).expect("encode");
    assert_eq!(encoded.len(), codec::encoded_len(&claims));
    assert_eq!(codec::decode(&encoded), Ok(claims.clone()));
    for end in 0..encoded.len() {
        assert_eq!(
            codec::decode(&encoded[..end]),
            Err(SessionTokenError::Malformed),
            "prefix {end}"
        );
    }
    let mut trailing = encoded.clone();
    trailing.push(0);
    assert_eq!(codec::decode(&trailing), Err(SessionTokenError::Malformed));
    for at in 0..encoded.len() {
        for value in [0x00, 0x7f, 0x80, 0xff] {
            let mut edited = encoded.clone();
            edited[at] = value;
            let _ = codec::decode(&edited);
        }
    }
    let mut huge_count = encoded.clone();
    huge_count.truncate(16 + 8);
    huge_count.extend_from_slice(&[0, 0, 0, 0xff, 0xff, 0xff, 0x7f]);
    assert_eq!(
        codec::decode(&huge_count),
        Err(SessionTokenError::Malformed)
    );
}

#[test]
fn token_with_ten_upstream_sessions_fits_in_a_header() {
    let claims = claims(10);
    let token = sealer().seal(&claims).expect("seal");
    eprintln!(
        "session token with 10 upstream sessions: {} characters",
        token.len()
    );
    assert!(token.len() < 2048, "{}", token.len());
}
