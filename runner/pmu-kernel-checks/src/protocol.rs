//! The result protocol: line-framed records on the console.
//!
//! Each frame is one line:
//!
//! ```text
//! @pmuc1 <length> <crc32> <payload>
//! ```
//!
//! where `<length>` is the payload's length in bytes (decimal) and `<crc32>`
//! its CRC-32 (ISO-HDLC, 8 hex digits). The payload is space-separated
//! `key=value` tokens with `%XX` escapes for `%`, space, `=` and any byte
//! outside printable ASCII. The first token is `kind=hello`, `kind=case` or
//! `kind=end`. A failing case gives `signature=<kind> amount=<i64>
//! unit=<unit> detail=<text>`; an unsupported or erroneous one `code=<code>
//! reason=<text>`. A case's facts are `fact.<name>=n:<u64>`, `b:<bool>` or
//! `s:<text>`.
//!
//! Console lines without the `@pmuc1 ` magic are not frames and are ignored.
//! A line with it that fails its length, checksum or field checks is a
//! [`FrameError`], never a record: garbage and truncation cannot produce a
//! misparsed pass.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};

use crate::record::{Fact, Magnitude, Reason, ReasonCode, Record, Signature, SignatureKind, Unit, Verdict};

pub const MAGIC: &str = "@pmuc1 ";

const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// One decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// The guest is up: what it is, as `key=value` pairs.
    Hello(Vec<(String, String)>),
    Case(Record),
    /// The guest finished; it reported this many case records.
    End {
        cases: u64,
    },
    /// Part `part` (from 0) of `parts` of a text too long for one line,
    /// such as a Linux guest's whole report.
    Chunk {
        part: u64,
        parts: u64,
        data: String,
    },
}

/// Why a line that claimed to be a frame was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The header is not `<length> <crc32> `.
    Header,
    /// The payload is not as long as the header says (truncated or padded).
    Length {
        said: usize,
        got: usize,
    },
    Checksum,
    /// A token or escape is malformed.
    Encoding,
    /// A required field is missing or has an impossible value.
    Field(&'static str),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Header => f.write_str("malformed frame header"),
            FrameError::Length { said, got } => write!(f, "frame length {got}, header says {said}"),
            FrameError::Checksum => f.write_str("frame checksum mismatch"),
            FrameError::Encoding => f.write_str("malformed frame payload"),
            FrameError::Field(name) => write!(f, "frame field `{name}` missing or invalid"),
        }
    }
}

/// Frames a payload: `@pmuc1 <len> <crc> <payload>`.
pub fn frame(payload: &str) -> String {
    let mut line = String::with_capacity(MAGIC.len() + 20 + payload.len());
    line.push_str(MAGIC);
    let _ = write!(line, "{} {:08x} ", payload.len(), CRC.checksum(payload.as_bytes()));
    line.push_str(payload);
    line
}

/// `value` with `%`, space, `=` and every byte outside printable ASCII as
/// `%XX`. Runs of bytes that pass as they are are copied whole: the probe
/// kernel frames every record, and under an emulating hypervisor (kvm_pvm
/// runs a guest that is not PVM-aware instruction by instruction, about
/// 0.5 µs each) a byte at a time was most of a record's cost.
fn escape(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = value.as_bytes();
    let mut plain = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        if matches!(byte, 0x21..=0x7e) && !matches!(byte, b'%' | b'=') {
            continue;
        }
        // A run holds only ASCII and follows an escaped byte, so a run that
        // is not empty starts and ends on character boundaries.
        if plain < i {
            out.push_str(&value[plain..i]);
        }
        out.push('%');
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
        plain = i + 1;
    }
    if plain < bytes.len() {
        out.push_str(&value[plain..]);
    }
}

fn token(out: &mut String, key: &str, value: &str) {
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str(key);
    out.push('=');
    escape(out, value);
}

pub fn hello(fields: &[(&str, &str)]) -> String {
    let mut payload = String::new();
    token(&mut payload, "kind", "hello");
    for (k, v) in fields {
        token(&mut payload, k, v);
    }
    frame(&payload)
}

/// Part `part` of `parts` of a long text (see [`Frame::Chunk`]).
pub fn chunk(part: u64, parts: u64, data: &str) -> String {
    let mut payload = String::new();
    token(&mut payload, "kind", "chunk");
    token(&mut payload, "part", &format!("{part}"));
    token(&mut payload, "parts", &format!("{parts}"));
    token(&mut payload, "data", data);
    frame(&payload)
}

pub fn end(cases: u64) -> String {
    let mut payload = String::new();
    token(&mut payload, "kind", "end");
    token(&mut payload, "cases", &format!("{cases}"));
    frame(&payload)
}

pub fn record(r: &Record) -> String {
    let mut payload = String::with_capacity(512);
    token(&mut payload, "kind", "case");
    token(&mut payload, "id", &r.case);
    token(&mut payload, "verdict", r.verdict.name());
    if let Some(s) = &r.signature {
        token(&mut payload, "signature", s.kind.name());
        token(&mut payload, "amount", &format!("{}", s.magnitude.amount));
        token(&mut payload, "unit", s.magnitude.unit.name());
        token(&mut payload, "detail", &s.detail);
    }
    if let Some(reason) = &r.reason {
        token(&mut payload, "code", reason.code.name());
        token(&mut payload, "reason", &reason.message);
    }
    token(&mut payload, "summary", &r.summary);
    for (name, fact) in &r.facts {
        let value = match fact {
            Fact::Number(n) => format!("n:{n}"),
            Fact::Flag(b) => format!("b:{b}"),
            Fact::Text(s) => format!("s:{s}"),
        };
        token(&mut payload, &format!("fact.{name}"), &value);
    }
    frame(&payload)
}

/// Decodes one console line: `None` if it is not a frame at all.
pub fn decode(line: &str) -> Option<Result<Frame, FrameError>> {
    let rest = &line[line.find(MAGIC)? + MAGIC.len()..];
    Some(decode_framed(rest.trim_end_matches(['\r', '\n'])))
}

fn decode_framed(rest: &str) -> Result<Frame, FrameError> {
    let mut parts = rest.splitn(3, ' ');
    let said: usize = parts.next().and_then(|l| l.parse().ok()).ok_or(FrameError::Header)?;
    let crc = parts
        .next()
        .filter(|c| c.len() == 8)
        .and_then(|c| u32::from_str_radix(c, 16).ok())
        .ok_or(FrameError::Header)?;
    let payload = parts.next().ok_or(FrameError::Header)?;
    if payload.len() != said {
        return Err(FrameError::Length {
            said,
            got: payload.len(),
        });
    }
    if CRC.checksum(payload.as_bytes()) != crc {
        return Err(FrameError::Checksum);
    }
    let mut fields: Vec<(String, String)> = Vec::new();
    for tok in payload.split(' ') {
        let (key, value) = tok.split_once('=').ok_or(FrameError::Encoding)?;
        if key.is_empty() {
            return Err(FrameError::Encoding);
        }
        fields.push((String::from(key), unescape(value)?));
    }
    let get = |name: &'static str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    match get("kind") {
        Some("hello") => Ok(Frame::Hello(fields.into_iter().filter(|(k, _)| k != "kind").collect())),
        Some("chunk") => {
            let number = |name: &'static str| -> Result<u64, FrameError> {
                get(name).and_then(|n| n.parse().ok()).ok_or(FrameError::Field(name))
            };
            let (part, parts) = (number("part")?, number("parts")?);
            if part >= parts {
                return Err(FrameError::Field("part"));
            }
            let data = String::from(get("data").ok_or(FrameError::Field("data"))?);
            Ok(Frame::Chunk { part, parts, data })
        }
        Some("end") => {
            let cases = get("cases")
                .and_then(|c| c.parse().ok())
                .ok_or(FrameError::Field("cases"))?;
            Ok(Frame::End { cases })
        }
        Some("case") => {
            let case = get("id").filter(|id| !id.is_empty()).ok_or(FrameError::Field("id"))?;
            let verdict = get("verdict")
                .and_then(Verdict::from_name)
                .ok_or(FrameError::Field("verdict"))?;
            let signature = match (get("signature"), get("amount"), get("unit"), get("detail")) {
                (Some(kind), Some(amount), Some(unit), Some(detail)) => Some(Signature {
                    kind: SignatureKind::from_name(kind).ok_or(FrameError::Field("signature"))?,
                    magnitude: Magnitude {
                        amount: amount.parse().map_err(|_| FrameError::Field("amount"))?,
                        unit: Unit::from_name(unit).ok_or(FrameError::Field("unit"))?,
                    },
                    detail: String::from(detail),
                }),
                (None, None, None, None) => None,
                _ => return Err(FrameError::Field("signature")),
            };
            // A failure always says how; nothing else may claim a signature.
            if (verdict == Verdict::Fail) != signature.is_some() {
                return Err(FrameError::Field("signature"));
            }
            let reason = match (get("code"), get("reason")) {
                (Some(code), Some(message)) => Some(Reason {
                    code: ReasonCode::from_name(code).ok_or(FrameError::Field("code"))?,
                    message: String::from(message),
                }),
                (None, None) => None,
                _ => return Err(FrameError::Field("reason")),
            };
            // Only a case without a verdict says why, and it always does.
            if matches!(verdict, Verdict::Unsupported | Verdict::Error) != reason.is_some() {
                return Err(FrameError::Field("reason"));
            }
            let summary = String::from(get("summary").ok_or(FrameError::Field("summary"))?);
            let mut facts = Vec::new();
            for (key, value) in &fields {
                let Some(name) = key.strip_prefix("fact.") else {
                    continue;
                };
                let fact = match value.split_once(':') {
                    Some(("n", n)) => Fact::Number(n.parse().map_err(|_| FrameError::Field("fact"))?),
                    Some(("b", "true")) => Fact::Flag(true),
                    Some(("b", "false")) => Fact::Flag(false),
                    Some(("s", s)) => Fact::Text(String::from(s)),
                    _ => return Err(FrameError::Field("fact")),
                };
                facts.push((String::from(name), fact));
            }
            Ok(Frame::Case(Record {
                case: String::from(case),
                verdict,
                signature,
                reason,
                summary,
                facts,
            }))
        }
        _ => Err(FrameError::Field("kind")),
    }
}

fn unescape(value: &str) -> Result<String, FrameError> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = value.get(i + 1..i + 3).ok_or(FrameError::Encoding)?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| FrameError::Encoding)?);
                i += 3;
            }
            b @ 0x21..=0x7e if b != b'=' => {
                out.push(b);
                i += 1;
            }
            _ => return Err(FrameError::Encoding),
        }
    }
    String::from_utf8(out).map_err(|_| FrameError::Encoding)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::ToString;

    use proptest::prelude::*;

    use super::*;

    fn sample() -> Record {
        Record::fail(
            "kernel/overflow status",
            SignatureKind::StatusNotSet,
            Magnitude::new(1, Unit::StatusBits),
            "bit 0 clear = 100%",
            "INT=0: STATUS 0x0",
        )
        .fact("counter", 1u64)
        .fact("int", false)
        .fact("note", "a=b c%d é")
    }

    #[test]
    fn records_round_trip() {
        let line = record(&sample());
        assert!(line.starts_with("@pmuc1 "));
        assert_eq!(decode(&line), Some(Ok(Frame::Case(sample()))));
        assert_eq!(decode(&end(3)), Some(Ok(Frame::End { cases: 3 })));
        assert_eq!(
            decode(&chunk(1, 2, "{\"a\": 1 }")),
            Some(Ok(Frame::Chunk {
                part: 1,
                parts: 2,
                data: "{\"a\": 1 }".into()
            }))
        );
        assert_eq!(decode(&chunk(2, 2, "x")), Some(Err(FrameError::Field("part"))));
        let hello_line = hello(&[("cpu", "GenuineIntel 6/5e")]);
        assert_eq!(
            decode(&hello_line),
            Some(Ok(Frame::Hello(alloc::vec![(
                "cpu".into(),
                "GenuineIntel 6/5e".into()
            )])))
        );
    }

    #[test]
    fn console_noise_around_frames_is_tolerated_and_other_lines_ignored() {
        let line = record(&sample());
        assert_eq!(
            decode(&alloc::format!("SeaBIOS junk {line}\r")),
            Some(Ok(Frame::Case(sample())))
        );
        assert_eq!(decode("Booting from ROM..."), None);
    }

    #[test]
    fn truncation_and_flipped_bytes_are_errors() {
        let line = record(&sample());
        assert!(matches!(
            decode(&line[..line.len() - 1]),
            Some(Err(FrameError::Length { .. }))
        ));
        let flipped = line.replacen("INT", "INS", 1);
        assert_eq!(decode(&flipped), Some(Err(FrameError::Checksum)));
    }

    #[test]
    fn a_frame_cannot_claim_a_pass_with_a_signature() {
        let payload = "kind=case id=a verdict=pass signature=overcount amount=1 unit=events-per-run detail=x summary=x";
        assert_eq!(decode(&frame(payload)), Some(Err(FrameError::Field("signature"))));
        let payload = "kind=case id=a verdict=unsupported summary=x";
        assert_eq!(decode(&frame(payload)), Some(Err(FrameError::Field("reason"))));
        let payload = "kind=case id=a verdict=unsupported code=no-such-code reason=x summary=x";
        assert_eq!(decode(&frame(payload)), Some(Err(FrameError::Field("code"))));
        let payload = "kind=case id=a verdict=pass code=no-pmu reason=x summary=x";
        assert_eq!(decode(&frame(payload)), Some(Err(FrameError::Field("reason"))));
        let payload = "kind=case id=a verdict=fail signature=overcount amount=x unit=events-per-run detail=x summary=x";
        assert_eq!(decode(&frame(payload)), Some(Err(FrameError::Field("amount"))));
    }

    fn arbitrary_record() -> impl Strategy<Value = Record> {
        let verdict = prop::sample::select(Verdict::ALL.to_vec());
        let kind = prop::sample::select(SignatureKind::ALL.to_vec());
        let unit = prop::sample::select(Unit::ALL.to_vec());
        let code = prop::sample::select(ReasonCode::ALL.to_vec());
        (
            (verdict, kind, unit, code, any::<i64>()),
            "\\PC{0,20}",
            "\\PC{1,20}",
            "\\PC{0,30}",
            prop::collection::vec(("[a-z_]{1,8}", any::<u64>()), 0..4),
        )
            .prop_map(|((verdict, kind, unit, code, amount), detail, id, text, facts)| {
                let mut r = Record::new(&id, verdict, text.clone());
                match verdict {
                    Verdict::Fail => r.signature = Some(Signature::new(kind, Magnitude { amount, unit }, detail)),
                    Verdict::Unsupported | Verdict::Error => r.reason = Some(Reason::new(code, text)),
                    Verdict::Pass => {}
                }
                for (name, n) in facts {
                    r = r.fact(&name, n);
                }
                r
            })
    }

    proptest! {
        #[test]
        fn every_record_round_trips(r in arbitrary_record()) {
            prop_assert_eq!(decode(&record(&r)), Some(Ok(Frame::Case(r))));
        }

        /// Any corruption of a frame (a changed byte, a cut, an insertion) is
        /// rejected or, at worst, decodes to the very record that was sent.
        /// It never panics and never yields a different record.
        #[test]
        fn corruption_is_never_accepted_as_a_different_record(
            r in arbitrary_record(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            how in 0..3u8,
        ) {
            let line = record(&r);
            let mut bytes = line.clone().into_bytes();
            let i = at.index(bytes.len());
            match how {
                0 => bytes[i] = byte,
                1 => bytes.truncate(i),
                _ => bytes.insert(i, byte),
            }
            let corrupted = std::string::String::from_utf8_lossy(&bytes).to_string();
            if let Some(Ok(Frame::Case(decoded))) = decode(&corrupted) {
                prop_assert_eq!(decoded, r);
            }
        }

        #[test]
        fn random_lines_never_panic(line in "\\PC{0,200}") {
            let _ = decode(&line);
            let _ = decode(&alloc::format!("{MAGIC}{line}"));
        }
    }
}
