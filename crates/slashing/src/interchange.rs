//! EIP-3076 interchange format (version 5): a streaming reader and a streaming writer.
//!
//! The reader walks the JSON once and hands each validator entry to a callback as soon as it is
//! parsed, so memory is bounded by the largest single entry, not by the file. The genesis
//! validators root in `metadata` must be checked before anything is imported; when a producer
//! writes `data` first (JSON objects are unordered; Go and `sort_keys` producers do this), the
//! entries are spooled to an anonymous temporary file and replayed after `metadata`.

use std::fmt;
use std::io::{Read, Write};

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use signward_core::bytes::{PublicKeyBytes, Root, Uint64};

use crate::history::{History, MergeReport};
use crate::SlashingError;

/// The only interchange version we read and write.
pub const FORMAT_VERSION: &str = "5";

#[derive(Debug, Clone, Deserialize)]
/// The interchange `metadata` object.
pub struct Metadata {
    /// Must be `5`.
    pub interchange_format_version: String,
    /// The chain the records belong to.
    pub genesis_validators_root: Root,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
/// One signed block.
pub struct SignedBlock {
    /// Its slot.
    pub slot: Uint64,
    /// Its signing root, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_root: Option<Root>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
/// One signed attestation.
pub struct SignedAttestation {
    /// Its source epoch.
    pub source_epoch: Uint64,
    /// Its target epoch.
    pub target_epoch: Uint64,
    /// Its signing root, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_root: Option<Root>,
}

/// One `data[]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValidatorHistory {
    /// The validator.
    pub pubkey: PublicKeyBytes,
    /// Its signed blocks.
    pub signed_blocks: Vec<SignedBlock>,
    /// Its signed attestations.
    pub signed_attestations: Vec<SignedAttestation>,
}

/// What the reader hands to its callback, in file order.
pub enum Event {
    /// The document's metadata (checked before any validator is used).
    Metadata(Metadata),
    /// One validator's records.
    Validator(ValidatorHistory),
}

struct Root_<'a, F> {
    on_event: &'a mut F,
    failure: &'a mut Option<SlashingError>,
}

struct Data<'a, F> {
    on_event: &'a mut F,
    failure: &'a mut Option<SlashingError>,
}

impl<'de, F> Visitor<'de> for Root_<'_, F>
where
    F: FnMut(Event) -> Result<(), SlashingError>,
{
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an EIP-3076 interchange object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen_metadata = false;
        let mut seen_data = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "metadata" => {
                    let m: Metadata = map.next_value()?;
                    if let Err(e) = (self.on_event)(Event::Metadata(m)) {
                        *self.failure = Some(e);
                        return Err(de::Error::custom("stopped"));
                    }
                    seen_metadata = true;
                }
                "data" => {
                    map.next_value_seed(Data {
                        on_event: &mut *self.on_event,
                        failure: &mut *self.failure,
                    })?;
                    seen_data = true;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !seen_metadata || !seen_data {
            *self.failure = Some(SlashingError::Interchange(
                "metadata and data are both required".into(),
            ));
            return Err(de::Error::custom("stopped"));
        }
        Ok(())
    }
}

impl<'de, F> DeserializeSeed<'de> for Data<'_, F>
where
    F: FnMut(Event) -> Result<(), SlashingError>,
{
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, F> Visitor<'de> for Data<'_, F>
where
    F: FnMut(Event) -> Result<(), SlashingError>,
{
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of validator entries")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(v) = seq.next_element::<ValidatorHistory>()? {
            if let Err(e) = (self.on_event)(Event::Validator(v)) {
                *self.failure = Some(e);
                return Err(de::Error::custom("stopped"));
            }
        }
        Ok(())
    }
}

/// Read an interchange document from `reader`, calling `on_event` for the metadata and then for
/// each validator entry. A callback error stops the read and is returned as is.
pub fn read<R: Read>(
    reader: R,
    mut on_event: impl FnMut(Event) -> Result<(), SlashingError>,
) -> Result<(), SlashingError> {
    let mut metadata_seen = false;
    let mut spool: Option<std::io::BufWriter<std::fs::File>> = None;
    let mut failure = None;
    let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::new(reader));
    let result = {
        let mut route = |event: Event| -> Result<(), SlashingError> {
            match event {
                Event::Metadata(m) => {
                    metadata_seen = true;
                    on_event(Event::Metadata(m))
                }
                Event::Validator(v) if metadata_seen => on_event(Event::Validator(v)),
                Event::Validator(v) => {
                    if spool.is_none() {
                        spool = Some(std::io::BufWriter::new(tempfile::tempfile()?));
                    }
                    let w = spool.as_mut().ok_or(SlashingError::WriterGone)?;
                    serde_json::to_writer(&mut *w, &v)
                        .map_err(|e| SlashingError::Interchange(format!("spool: {e}")))?;
                    w.write_all(b"\n")?;
                    Ok(())
                }
            }
        };
        de.deserialize_map(Root_ {
            on_event: &mut route,
            failure: &mut failure,
        })
    };
    if let Some(e) = failure {
        return Err(e);
    }
    result.map_err(|e| SlashingError::Interchange(format!("malformed JSON ({e})")))?;
    de.end()
        .map_err(|_| SlashingError::Interchange("trailing data after the document".into()))?;
    if let Some(w) = spool {
        use std::io::{BufRead, Seek};
        let mut file = w
            .into_inner()
            .map_err(|e| SlashingError::Io(e.into_error()))?;
        file.rewind()?;
        for line in std::io::BufReader::new(file).lines() {
            let v: ValidatorHistory = serde_json::from_str(&line?)
                .map_err(|e| SlashingError::Interchange(format!("spool: {e}")))?;
            on_event(Event::Validator(v))?;
        }
    }
    Ok(())
}

/// Most records (blocks, attestations, and one per validator) handed over in one
/// [`Batch::Validators`]: a store imports one batch per transaction, so this bounds how long an
/// import holds the write lock and, with the one-batch channel, how much memory it uses.
pub const BATCH_ROWS: usize = 32_768;

/// One validator entry, read and normalised ([`History::from_interchange`]) by the parser, so
/// that the store's thread only merges and writes.
#[derive(Debug)]
pub struct Prepared {
    /// The validator.
    pub pubkey: PublicKeyBytes,
    /// Its records, as the file gives them (disagreements inside the file already merged).
    pub incoming: History,
    /// What normalising the entry counted (duplicates and conflicts inside the file).
    pub report: MergeReport,
}

/// What [`read_batches`] hands over, in file order: the metadata first, then the entries.
#[derive(Debug)]
pub enum Batch {
    /// The document's metadata (to be checked before any batch is imported).
    Metadata(Metadata),
    /// Consecutive entries of the file, about [`BATCH_ROWS`] records at most (a single entry
    /// larger than that comes alone).
    Validators(Vec<Prepared>),
}

/// Read an interchange document as [`read`] does, handing the entries over in batches. When
/// reading fails, the entries read in full before the failure are still handed over (an import
/// keeps them, as importing one entry at a time would), and then the error is returned.
pub fn read_batches<R: Read>(
    reader: R,
    max_rows: usize,
    mut send: impl FnMut(Batch) -> Result<(), SlashingError>,
) -> Result<(), SlashingError> {
    let mut pending: Vec<Prepared> = Vec::new();
    let mut rows = 0usize;
    let result = read(reader, |event| match event {
        Event::Metadata(m) => send(Batch::Metadata(m)),
        Event::Validator(v) => {
            let mut report = MergeReport::default();
            let incoming = History::from_interchange(&v, &mut report)?;
            rows = rows
                .saturating_add(1)
                .saturating_add(v.signed_blocks.len())
                .saturating_add(v.signed_attestations.len());
            pending.push(Prepared {
                pubkey: v.pubkey,
                incoming,
                report,
            });
            if rows >= max_rows {
                rows = 0;
                send(Batch::Validators(std::mem::take(&mut pending)))?;
            }
            Ok(())
        }
    });
    if !pending.is_empty() {
        let flushed = send(Batch::Validators(pending));
        if result.is_ok() {
            flushed?;
        }
    }
    result
}

/// Check metadata: version 5.
pub fn check_metadata(m: &Metadata) -> Result<(), SlashingError> {
    if m.interchange_format_version != FORMAT_VERSION {
        return Err(SlashingError::Interchange(format!(
            "unsupported interchange_format_version {:?} (only \"5\")",
            m.interchange_format_version
        )));
    }
    Ok(())
}

/// Copy the entries of an interchange document whose public key `keep` accepts into a new
/// document (same metadata). Returns it and the public keys in it that have at least one record,
/// in order.
pub fn filter<R: Read>(
    reader: R,
    keep: impl Fn(&PublicKeyBytes) -> bool,
) -> Result<(Vec<u8>, Vec<PublicKeyBytes>), SlashingError> {
    let mut writer: Option<Writer<Vec<u8>>> = None;
    let mut kept = Vec::new();
    read(reader, |event| match event {
        Event::Metadata(m) => {
            check_metadata(&m)?;
            writer = Some(Writer::new(Vec::new(), &m.genesis_validators_root)?);
            Ok(())
        }
        Event::Validator(v) => {
            if keep(&v.pubkey) {
                let w = writer.as_mut().ok_or(SlashingError::WriterGone)?;
                w.validator(&v.pubkey, &v.signed_blocks, &v.signed_attestations)?;
                if !v.signed_blocks.is_empty() || !v.signed_attestations.is_empty() {
                    kept.push(v.pubkey);
                }
            }
            Ok(())
        }
    })?;
    let w = writer.ok_or_else(|| SlashingError::Interchange("no metadata".into()))?;
    Ok((w.finish()?, kept))
}

/// The genesis validators root a document is for (reading stops at its metadata).
pub fn genesis_validators_root<R: Read>(reader: R) -> Result<Root, SlashingError> {
    let mut found = None;
    let read_result = read(reader, |event| match event {
        Event::Metadata(m) => {
            found = Some(m.genesis_validators_root);
            Err(SlashingError::Interchange("metadata read".into()))
        }
        Event::Validator(_) => Ok(()),
    });
    match (found, read_result) {
        (Some(r), _) => Ok(r),
        (None, Err(e)) => Err(e),
        (None, Ok(())) => Err(SlashingError::Interchange("no metadata".into())),
    }
}

/// Writes an interchange document one validator at a time.
pub struct Writer<W: Write> {
    out: W,
    first: bool,
    /// One validator's bytes, reused.
    buf: Vec<u8>,
}

impl<W: Write> Writer<W> {
    /// Start a document for the chain `genesis_validators_root`.
    pub fn new(mut out: W, genesis_validators_root: &Root) -> Result<Self, SlashingError> {
        write!(
            out,
            "{{\"metadata\":{{\"interchange_format_version\":\"{FORMAT_VERSION}\",\"genesis_validators_root\":\"{}\"}},\"data\":[",
            genesis_validators_root.to_hex()
        )?;
        Ok(Writer {
            out,
            first: true,
            buf: Vec::new(),
        })
    }

    /// Write one validator's records. The bytes are formatted by hand (no `fmt` machinery, no
    /// allocation per record): an export writes millions of them. The output is exactly what
    /// `format!` with `Display` would give (checked by `writer_bytes_are_stable`).
    pub fn validator(
        &mut self,
        pubkey: &PublicKeyBytes,
        blocks: &[SignedBlock],
        attestations: &[SignedAttestation],
    ) -> Result<(), SlashingError> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        if !self.first {
            buf.push(b',');
        }
        self.first = false;
        buf.extend_from_slice(b"\n{\"pubkey\":\"");
        push_hex(&mut buf, &pubkey.0);
        buf.extend_from_slice(b"\",\"signed_blocks\":[");
        for (i, b) in blocks.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            buf.extend_from_slice(b"{\"slot\":\"");
            push_u64(&mut buf, b.slot.0);
            buf.push(b'"');
            if let Some(r) = b.signing_root {
                buf.extend_from_slice(b",\"signing_root\":\"");
                push_hex(&mut buf, &r.0);
                buf.push(b'"');
            }
            buf.push(b'}');
        }
        buf.extend_from_slice(b"],\"signed_attestations\":[");
        for (i, a) in attestations.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            buf.extend_from_slice(b"{\"source_epoch\":\"");
            push_u64(&mut buf, a.source_epoch.0);
            buf.extend_from_slice(b"\",\"target_epoch\":\"");
            push_u64(&mut buf, a.target_epoch.0);
            buf.push(b'"');
            if let Some(r) = a.signing_root {
                buf.extend_from_slice(b",\"signing_root\":\"");
                push_hex(&mut buf, &r.0);
                buf.push(b'"');
            }
            buf.push(b'}');
        }
        buf.extend_from_slice(b"]}");
        let written = self.out.write_all(&buf);
        self.buf = buf;
        Ok(written?)
    }

    /// Close the document and flush.
    pub fn finish(mut self) -> Result<W, SlashingError> {
        self.out.write_all(b"\n]}\n")?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// `0x` and the lowercase hex of `bytes`, as [`signward_core::bytes::encode_hex`] writes it.
fn push_hex(buf: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    buf.extend_from_slice(b"0x");
    for b in bytes {
        buf.push(DIGITS[usize::from(b >> 4)]);
        buf.push(DIGITS[usize::from(b & 0x0f)]);
    }
}

/// The decimal digits of `v`, as `Display` writes them.
fn push_u64(buf: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-formatted writer writes exactly what the `fmt`-based one did (kept here as the
    /// reference), for every shape of record and the extremes of `u64`.
    #[test]
    fn writer_bytes_are_stable() {
        fn reference(
            pk: &PublicKeyBytes,
            blocks: &[SignedBlock],
            atts: &[SignedAttestation],
        ) -> String {
            let mut o = format!("\n{{\"pubkey\":\"{}\",\"signed_blocks\":[", pk.to_hex());
            for (i, b) in blocks.iter().enumerate() {
                let sep = if i == 0 { "" } else { "," };
                match b.signing_root {
                    Some(r) => {
                        o += &format!(
                            "{sep}{{\"slot\":\"{}\",\"signing_root\":\"{}\"}}",
                            b.slot, r
                        )
                    }
                    None => o += &format!("{sep}{{\"slot\":\"{}\"}}", b.slot),
                }
            }
            o += "],\"signed_attestations\":[";
            for (i, a) in atts.iter().enumerate() {
                let sep = if i == 0 { "" } else { "," };
                o += &format!(
                    "{sep}{{\"source_epoch\":\"{}\",\"target_epoch\":\"{}\"",
                    a.source_epoch, a.target_epoch
                );
                if let Some(r) = a.signing_root {
                    o += &format!(",\"signing_root\":\"{r}\"");
                }
                o += "}";
            }
            o + "]}"
        }
        let gvr = Root::from([0xabu8; 32]);
        let values = [
            0u64,
            1,
            9,
            10,
            99,
            100,
            12345,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ];
        let mut w = Writer::new(Vec::new(), &gvr).unwrap();
        let mut want = format!(
            "{{\"metadata\":{{\"interchange_format_version\":\"5\",\"genesis_validators_root\":\"{}\"}},\"data\":[",
            gvr.to_hex()
        );
        for (n, v) in values.iter().enumerate() {
            let mut pk = [0u8; 48];
            pk[0] = n as u8;
            pk[47] = 0xf0 | n as u8;
            let pk = PublicKeyBytes::from(pk);
            let root = |b: u8| (n % 3 != 0).then(|| Root::from([b; 32]));
            let blocks: Vec<SignedBlock> = values[..n]
                .iter()
                .map(|s| SignedBlock {
                    slot: Uint64(*s),
                    signing_root: root(0x0f),
                })
                .collect();
            let atts: Vec<SignedAttestation> = values[n..]
                .iter()
                .map(|t| SignedAttestation {
                    source_epoch: Uint64(*v),
                    target_epoch: Uint64(*t),
                    signing_root: root(0xa5),
                })
                .collect();
            w.validator(&pk, &blocks, &atts).unwrap();
            if n > 0 {
                want.push(',');
            }
            want += &reference(&pk, &blocks, &atts);
        }
        want += "\n]}\n";
        assert_eq!(String::from_utf8(w.finish().unwrap()).unwrap(), want);
    }

    #[test]
    fn round_trip_and_order_rules() {
        let gvr = Root::from([1u8; 32]);
        let pk = PublicKeyBytes::from([2u8; 48]);
        let mut w = Writer::new(Vec::new(), &gvr).unwrap();
        let blocks = [
            SignedBlock {
                slot: Uint64(5),
                signing_root: Some(Root::from([3u8; 32])),
            },
            SignedBlock {
                slot: Uint64(6),
                signing_root: None,
            },
        ];
        let atts = [SignedAttestation {
            source_epoch: Uint64(1),
            target_epoch: Uint64(2),
            signing_root: None,
        }];
        w.validator(&pk, &blocks, &atts).unwrap();
        w.validator(&pk, &[], &[]).unwrap();
        let bytes = w.finish().unwrap();
        let mut seen = Vec::new();
        read(&bytes[..], |e| {
            match e {
                Event::Metadata(m) => {
                    check_metadata(&m)?;
                    assert_eq!(m.genesis_validators_root, gvr);
                }
                Event::Validator(v) => seen.push(v),
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].signed_blocks, blocks);
        assert_eq!(seen[0].signed_attestations, atts);

        // `data` before `metadata`: entries are replayed after the metadata.
        let data_first = br#"{"data":[{"pubkey":"0x020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202","signed_blocks":[{"slot":"9"}],"signed_attestations":[]}],"metadata":{"interchange_format_version":"5","genesis_validators_root":"0x0000000000000000000000000000000000000000000000000000000000000000"}}"#;
        let mut order = Vec::new();
        read(&data_first[..], |e| {
            order.push(match e {
                Event::Metadata(_) => "metadata".to_string(),
                Event::Validator(v) => format!("validator {}", v.signed_blocks[0].slot),
            });
            Ok(())
        })
        .unwrap();
        assert_eq!(order, ["metadata", "validator 9"]);
        let no_data = br#"{"metadata":{"interchange_format_version":"5","genesis_validators_root":"0x0000000000000000000000000000000000000000000000000000000000000000"}}"#;
        assert!(matches!(
            read(&no_data[..], |_| Ok(())),
            Err(SlashingError::Interchange(_))
        ));
        assert!(read(&b"{\"metadata\": 3}"[..], |_| Ok(())).is_err());
        assert!(read(&b"[]"[..], |_| Ok(())).is_err());
    }
}
