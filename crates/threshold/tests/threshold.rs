//! Threshold BLS, end to end over the public API: a dealer's split, key generation, resharing and
//! combination, against the whole key's own signatures (blst) and, for the group's results, an
//! independent implementation (py_ecc).

use signward_threshold::{
    combine, combine_dealings, combine_reshares, deal, reshare, split, verify_partial, Commitments,
    Dealing, KeyShare, PartialSignature, Received, SecretShare, ThresholdError,
};

const DST: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";

fn whole_key(seed: u8) -> blst::min_pk::SecretKey {
    blst::min_pk::SecretKey::key_gen(&[seed; 32], &[]).unwrap()
}

/// Every subset of `1..=n` of size `k`, in lexicographic order.
fn subsets(n: u32, k: usize) -> Vec<Vec<u32>> {
    fn go(start: u32, n: u32, k: usize, cur: &mut Vec<u32>, out: &mut Vec<Vec<u32>>) {
        if cur.len() == k {
            out.push(cur.clone());
            return;
        }
        for i in start..=n {
            cur.push(i);
            go(i + 1, n, k, cur, out);
            cur.pop();
        }
    }
    let mut out = Vec::new();
    go(1, n, k, &mut Vec::new(), &mut out);
    out
}

fn copy(s: &SecretShare) -> SecretShare {
    SecretShare::from_bytes(s.index(), &s.dangerous_bytes()).unwrap()
}

fn keys_of(d: &Dealing) -> Vec<KeyShare> {
    d.shares
        .iter()
        .map(|s| KeyShare {
            share: copy(s),
            commitments: d.commitments.clone(),
        })
        .collect()
}

fn partial(k: &KeyShare, msg: &[u8]) -> PartialSignature {
    PartialSignature {
        index: k.share.index(),
        signature: k.share.sign(msg, DST).unwrap(),
    }
}

fn sign_with(keys: &[KeyShare], who: &[u32], msg: &[u8]) -> Result<[u8; 96], ThresholdError> {
    let partials: Vec<PartialSignature> = who
        .iter()
        .map(|&i| partial(&keys[i as usize - 1], msg))
        .collect();
    combine(&keys[0].commitments, &partials, msg, DST).map(|c| c.signature)
}

#[test]
fn any_t_of_n_shares_sign_exactly_as_the_whole_key_and_t_minus_1_cannot() {
    let msg = [0x5au8; 32];
    for (seed, t, n) in [(1u8, 2u32, 3u32), (2, 3, 5), (3, 5, 5), (4, 2, 2)] {
        let sk = whole_key(seed);
        let dealing = split(&sk.to_bytes(), t, n).unwrap();
        assert_eq!(
            dealing.commitments.group_public_key(),
            sk.sk_to_pk().to_bytes(),
            "C_0 is the key's own public key"
        );
        let expected = sk.sign(&msg, DST, &[]).to_bytes();
        let keys = keys_of(&dealing);
        for k in &keys {
            dealing.commitments.verify_share(&k.share).unwrap();
            assert_eq!(
                dealing.commitments.public_share(k.share.index()).unwrap(),
                k.share.public_share()
            );
        }
        for who in subsets(n, t as usize) {
            assert_eq!(
                sign_with(&keys, &who, &msg).unwrap(),
                expected,
                "{t}-of-{n} {who:?}"
            );
        }
        for who in subsets(n, t as usize - 1) {
            assert_eq!(
                sign_with(&keys, &who, &msg),
                Err(ThresholdError::NotEnoughPartials {
                    needed: t as usize,
                    valid: t as usize - 1
                })
            );
        }
    }
}

#[test]
fn parameters_and_secrets_are_checked() {
    let sk = whole_key(9).to_bytes();
    for (t, n) in [(1, 3), (0, 0), (4, 3), (2, 256)] {
        assert_eq!(
            split(&sk, t, n).err().map(|e| e.code()),
            Some("threshold_parameters"),
            "{t}-of-{n}"
        );
    }
    assert_eq!(
        split(&[0u8; 32], 2, 3).err(),
        Some(ThresholdError::InvalidSecret)
    );
    assert_eq!(
        split(&[0xffu8; 32], 2, 3).err(),
        Some(ThresholdError::InvalidSecret)
    );
    assert_eq!(
        SecretShare::from_bytes(0, &sk).err(),
        Some(ThresholdError::InvalidIndex(0))
    );
}

#[test]
fn a_forged_share_or_partial_is_named_and_never_combined() {
    let msg = [1u8; 32];
    let sk = whole_key(5);
    let d = split(&sk.to_bytes(), 2, 3).unwrap();
    let keys = keys_of(&d);

    // A share altered in transit fails its commitments.
    let mut bytes = *keys[1].share.dangerous_bytes();
    bytes[31] ^= 1;
    let forged = SecretShare::from_bytes(2, &bytes).unwrap();
    assert_eq!(
        d.commitments.verify_share(&forged),
        Err(ThresholdError::ShareMismatch { dealer: 2 })
    );
    // A share claimed for another index fails too.
    let moved = SecretShare::from_bytes(3, &keys[1].share.dangerous_bytes()).unwrap();
    assert!(d.commitments.verify_share(&moved).is_err());

    // Partials: a forged one, one under the wrong index, garbage, one of another message.
    let good1 = partial(&keys[0], &msg);
    let good3 = partial(&keys[2], &msg);
    let wrong_index = PartialSignature {
        index: 2,
        signature: good3.signature,
    };
    let garbage = PartialSignature {
        index: 2,
        signature: [0xa5; 96],
    };
    let other_msg = partial(&keys[1], &[2u8; 32]);
    let forged_partial = PartialSignature {
        index: 2,
        signature: forged.sign(&msg, DST).unwrap(),
    };
    for bad in [wrong_index, garbage, other_msg, forged_partial] {
        assert!(!verify_partial(&d.commitments, &bad, &msg, DST).unwrap());
        // Alone with one good partial: not enough.
        assert_eq!(
            combine(&d.commitments, &[bad, good1], &msg, DST),
            Err(ThresholdError::NotEnoughPartials {
                needed: 2,
                valid: 1
            })
        );
        // Beside enough good ones: skipped and reported.
        let c = combine(&d.commitments, &[bad, good1, good3], &msg, DST).unwrap();
        assert_eq!(c.rejected, vec![2]);
        assert_eq!(c.signature, sk.sign(&msg, DST, &[]).to_bytes());
    }
    // The same peer twice is refused, not counted twice.
    assert_eq!(
        combine(&d.commitments, &[good1, good1], &msg, DST),
        Err(ThresholdError::DuplicateIndex(1))
    );
}

#[test]
fn commitments_round_trip_and_refuse_points_off_the_subgroup_or_the_identity() {
    let d = split(&whole_key(6).to_bytes(), 3, 4).unwrap();
    let json = serde_json::to_string(&d.commitments).unwrap();
    let back: Commitments = serde_json::from_str(&json).unwrap();
    assert_eq!(back, d.commitments);
    assert_eq!(back.threshold(), 3);

    let mut points = d.commitments.to_compressed();
    // The identity as the group key.
    let mut identity = [0u8; 48];
    identity[0] = 0xc0;
    points[0] = identity;
    assert_eq!(
        Commitments::from_compressed(&points)
            .err()
            .map(|e| e.code()),
        Some("threshold_point")
    );
    // Not a point at all.
    let mut points = d.commitments.to_compressed();
    points[1] = [0x9f; 48];
    assert!(Commitments::from_compressed(&points).is_err());
    // Too few coefficients.
    assert!(Commitments::from_compressed(&points[..1]).is_err());
    assert!(serde_json::from_str::<Commitments>("[\"0x00\"]").is_err());
}

/// Distributed key generation with 3 peers, t = 2: every peer deals, every peer combines what it
/// received. Returns each peer's key share.
fn dkg(t: u32, n: u32) -> Vec<KeyShare> {
    let dealings: Vec<Dealing> = (0..n).map(|_| deal(t, n).unwrap()).collect();
    (1..=n)
        .map(|me| {
            let received: Vec<Received> = dealings
                .iter()
                .zip(1u32..)
                .map(|(d, dealer)| Received {
                    dealer,
                    commitments: d.commitments.clone(),
                    share: copy(&d.shares[me as usize - 1]),
                })
                .collect();
            combine_dealings(me, t, &received).unwrap()
        })
        .collect()
}

#[test]
fn key_generation_gives_every_peer_the_same_group_and_any_t_sign() {
    let keys = dkg(2, 3);
    for k in &keys[1..] {
        assert_eq!(
            k.commitments, keys[0].commitments,
            "every peer agrees on the group"
        );
    }
    let msg = [3u8; 32];
    let pk = blst::min_pk::PublicKey::from_bytes(&keys[0].commitments.group_public_key()).unwrap();
    let mut sigs = Vec::new();
    for who in subsets(3, 2) {
        let sig = sign_with(&keys, &who, &msg).unwrap();
        let s = blst::min_pk::Signature::from_bytes(&sig).unwrap();
        assert_eq!(
            s.verify(true, &msg, DST, &[], &pk, true),
            blst::BLST_ERROR::BLST_SUCCESS
        );
        sigs.push(sig);
    }
    assert!(sigs.windows(2).all(|w| w[0] == w[1]), "BLS is unique");
}

#[test]
fn key_generation_names_a_dealer_that_cheats() {
    let (t, n) = (2, 3);
    let dealings: Vec<Dealing> = (0..n).map(|_| deal(t, n).unwrap()).collect();
    let me = 1u32;
    let mut received: Vec<Received> = dealings
        .iter()
        .zip(1u32..)
        .map(|(d, dealer)| Received {
            dealer,
            commitments: d.commitments.clone(),
            share: copy(&d.shares[0]),
        })
        .collect();
    // Dealer 3 sends peer 1 a share of another polynomial.
    received[2].share = copy(&deal(t, n).unwrap().shares[0]);
    assert_eq!(
        combine_dealings(me, t, &received).err(),
        Some(ThresholdError::ShareMismatch { dealer: 3 })
    );
    // Dealer 2 publishes commitments for another threshold.
    let other = deal(3, n).unwrap();
    received[2].share = copy(&dealings[2].shares[0]);
    received[1] = Received {
        dealer: 2,
        commitments: other.commitments.clone(),
        share: copy(&other.shares[0]),
    };
    assert_eq!(
        combine_dealings(me, t, &received).err(),
        Some(ThresholdError::ThresholdMismatch {
            expected: 2,
            got: 3
        })
    );
    // A share meant for peer 2 handed to peer 1.
    let wrong = vec![
        Received {
            dealer: 1,
            commitments: dealings[0].commitments.clone(),
            share: copy(&dealings[0].shares[1]),
        },
        Received {
            dealer: 2,
            commitments: dealings[1].commitments.clone(),
            share: copy(&dealings[1].shares[0]),
        },
    ];
    assert_eq!(
        combine_dealings(me, t, &wrong).err(),
        Some(ThresholdError::WrongRecipient {
            expected: 1,
            got: 2
        })
    );
    // One dealer alone would know the key.
    assert_eq!(
        combine_dealings(me, t, &received[..1]).err(),
        Some(ThresholdError::DealerCount { needed: 2, got: 1 })
    );
}

/// `holders` of `old` reshare to a group of `new_n` with threshold `new_t`.
fn refresh(old: &[KeyShare], holders: &[u32], new_t: u32, new_n: u32) -> Vec<KeyShare> {
    let commitments = &old[0].commitments;
    let dealings: Vec<(u32, Dealing)> = holders
        .iter()
        .map(|&h| (h, reshare(&old[h as usize - 1], new_t, new_n).unwrap()))
        .collect();
    (1..=new_n)
        .map(|me| {
            let received: Vec<Received> = dealings
                .iter()
                .map(|(dealer, d)| Received {
                    dealer: *dealer,
                    commitments: d.commitments.clone(),
                    share: copy(&d.shares[me as usize - 1]),
                })
                .collect();
            combine_reshares(me, commitments, &received).unwrap()
        })
        .collect()
}

#[test]
fn refresh_keeps_the_key_changes_t_and_n_and_replaces_a_lost_peer() {
    let sk = whole_key(8);
    let msg = [4u8; 32];
    let expected = sk.sign(&msg, DST, &[]).to_bytes();
    let old = keys_of(&split(&sk.to_bytes(), 2, 3).unwrap());

    // Peer 3 is lost: peers 1 and 2 issue a new 2-of-3 group; index 3 is its replacement.
    let new = refresh(&old, &[1, 2], 2, 3);
    assert_eq!(
        new[0].commitments.group_public_key(),
        sk.sk_to_pk().to_bytes(),
        "the validator's public key is unchanged"
    );
    assert_ne!(new[0].commitments, old[0].commitments);
    for who in subsets(3, 2) {
        assert_eq!(sign_with(&new, &who, &msg).unwrap(), expected);
    }
    // The lost peer's old share does not count in the new group.
    let stale = partial(&old[2], &msg);
    assert!(!verify_partial(&new[0].commitments, &stale, &msg, DST).unwrap());
    assert_eq!(
        combine(
            &new[0].commitments,
            &[stale, partial(&new[0], &msg)],
            &msg,
            DST
        ),
        Err(ThresholdError::NotEnoughPartials {
            needed: 2,
            valid: 1
        })
    );

    // Grow to 3-of-5.
    let grown = refresh(&new, &[2, 3], 3, 5);
    assert_eq!(grown[0].commitments.threshold(), 3);
    assert_eq!(
        grown[0].commitments.group_public_key(),
        sk.sk_to_pk().to_bytes()
    );
    for who in subsets(5, 3) {
        assert_eq!(sign_with(&grown, &who, &msg).unwrap(), expected);
    }
    assert!(sign_with(&grown, &[1, 5], &msg).is_err());
}

#[test]
fn a_refresh_refuses_dealers_that_do_not_hold_their_share() {
    let sk = whole_key(10);
    let old = keys_of(&split(&sk.to_bytes(), 2, 3).unwrap());
    let commitments = &old[0].commitments;
    let honest = reshare(&old[0], 2, 3).unwrap();
    // Dealer 2 deals a secret of its choosing instead of its share.
    let rogue = deal(2, 3).unwrap();
    let received = vec![
        Received {
            dealer: 1,
            commitments: honest.commitments.clone(),
            share: copy(&honest.shares[0]),
        },
        Received {
            dealer: 2,
            commitments: rogue.commitments.clone(),
            share: copy(&rogue.shares[0]),
        },
    ];
    assert_eq!(
        combine_reshares(1, commitments, &received).err(),
        Some(ThresholdError::NotAHolder(2))
    );
    // Dealer 1 claims to be holder 3.
    let claimed = vec![
        Received {
            dealer: 3,
            commitments: honest.commitments.clone(),
            share: copy(&honest.shares[0]),
        },
        Received {
            dealer: 2,
            commitments: reshare(&old[1], 2, 3).unwrap().commitments,
            share: copy(&honest.shares[0]),
        },
    ];
    assert_eq!(
        combine_reshares(1, commitments, &claimed).err(),
        Some(ThresholdError::NotAHolder(3))
    );
    // Not exactly t holders.
    assert_eq!(
        combine_reshares(1, commitments, &received[..1]).err(),
        Some(ThresholdError::DealerCount { needed: 2, got: 1 })
    );
    // A holder whose own share does not match the commitments cannot reshare.
    let mut bad = *old[0].share.dangerous_bytes();
    bad[31] ^= 1;
    let forged = KeyShare {
        share: SecretShare::from_bytes(1, &bad).unwrap(),
        commitments: commitments.clone(),
    };
    assert!(reshare(&forged, 2, 3).is_err());
}

/// The group's results, checked by py_ecc: it verifies each share against the commitments
/// (Feldman), interpolates the partial signatures itself, and verifies the result under the group
/// key with the Ethereum ciphersuite.
#[test]
fn py_ecc_agrees_on_shares_interpolation_and_the_group_signature() {
    let Some(python) = python() else { return };
    let keys = dkg(2, 3);
    let refreshed = refresh(&keys, &[1, 3], 3, 4);
    let msg = [0x42u8; 32];
    let mut cases = Vec::new();
    for (group, who) in [(&keys, vec![1u32, 3]), (&refreshed, vec![2, 3, 4])] {
        let partials: Vec<PartialSignature> = who
            .iter()
            .map(|&i| partial(&group[i as usize - 1], &msg))
            .collect();
        let combined = combine(&group[0].commitments, &partials, &msg, DST).unwrap();
        cases.push(serde_json::json!({
            "commitments": group[0].commitments,
            "shares": group.iter().map(|k| (k.share.index(), hex::encode(*k.share.dangerous_bytes()))).collect::<Vec<_>>(),
            "partials": partials,
            "combined": format!("0x{}", hex::encode(combined.signature)),
        }));
    }
    assert_eq!(
        refreshed[0].commitments.group_public_key(),
        keys[0].commitments.group_public_key()
    );
    let input = serde_json::json!({ "msg": hex::encode(msg), "cases": cases }).to_string();
    let script = r#"
import json, sys
from py_ecc.bls import G2ProofOfPossession as bls
from py_ecc.bls.g2_primitives import pubkey_to_G1, G1_to_pubkey, signature_to_G2, G2_to_signature
from py_ecc.optimized_bls12_381 import G1, Z2, add, multiply, curve_order, normalize
d = json.load(sys.stdin)
msg = bytes.fromhex(d["msg"])
h = lambda s: bytes.fromhex(s[2:] if s.startswith("0x") else s)
for case in d["cases"]:
    C = [pubkey_to_G1(h(c)) for c in case["commitments"]]
    for idx, share in case["shares"]:
        acc = None
        for k, c in enumerate(C):
            term = multiply(c, pow(idx, k, curve_order))
            acc = term if acc is None else add(acc, term)
        assert G1_to_pubkey(acc) == G1_to_pubkey(multiply(G1, int(share, 16))), ("feldman", idx)
    xs = [p["index"] for p in case["partials"]]
    sig = Z2
    for p in case["partials"]:
        i = p["index"]
        lam = 1
        for j in xs:
            if j != i:
                lam = lam * j * pow(j - i, -1, curve_order) % curve_order
        sig = add(sig, multiply(signature_to_G2(h(p["signature"])), lam))
    assert G2_to_signature(sig) == h(case["combined"]), "interpolation"
    assert bls.Verify(h(case["commitments"][0]), msg, h(case["combined"])), "verify"
print("ok")
"#;
    let mut child = std::process::Command::new(python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "py_ecc: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Python with py_ecc (set by scripts/test.sh); required in CI.
fn python() -> Option<std::path::PathBuf> {
    match std::env::var_os("SIGNWARD_TEST_PYTHON") {
        Some(p) => Some(p.into()),
        None if std::env::var_os("SIGNWARD_REQUIRE_PY").is_some()
            || std::env::var_os("CI").is_some() =>
        {
            panic!("SIGNWARD_TEST_PYTHON is not set: run scripts/test.sh")
        }
        None => {
            eprintln!("note: the py_ecc cross-check is skipped; run scripts/test.sh to include it");
            None
        }
    }
}
