//! A small, bounded AMF0 codec covering what RTMP commands and metadata use.
//!
//! We do not use the `amf` crate (1.0): its decoder recurses without a depth
//! limit (a few kilobytes of nested object markers overflow the stack),
//! allocates `vec![0; len]` from a peer-declared 32-bit length before reading
//! anything, and expands reference markers by cloning, so a small message can
//! blow up exponentially. None of that is acceptable for bytes from the
//! internet.
//!
//! Here every declared length is checked against the bytes actually present
//! before allocating, nesting is capped at [`MAX_DEPTH`], the number of values
//! per decode is capped at [`MAX_VALUES`], and reference / AMF3 markers are
//! rejected (no encoder we serve sends them in commands or metadata).

use bytes::{BufMut, BytesMut};

/// Deepest nesting of objects/arrays accepted by the decoder.
pub const MAX_DEPTH: usize = 32;

/// Most values (including nested ones) one decode call may produce. Bounds
/// memory: a hostile 8 MiB message of one-byte nulls would otherwise become
/// millions of `Amf0Value`s.
pub const MAX_VALUES: usize = 65_536;

mod marker {
    pub const NUMBER: u8 = 0x00;
    pub const BOOLEAN: u8 = 0x01;
    pub const STRING: u8 = 0x02;
    pub const OBJECT: u8 = 0x03;
    pub const NULL: u8 = 0x05;
    pub const UNDEFINED: u8 = 0x06;
    pub const ECMA_ARRAY: u8 = 0x08;
    pub const OBJECT_END: u8 = 0x09;
    pub const STRICT_ARRAY: u8 = 0x0a;
    pub const DATE: u8 = 0x0b;
    pub const LONG_STRING: u8 = 0x0c;
    pub const UNSUPPORTED: u8 = 0x0d;
    pub const XML_DOCUMENT: u8 = 0x0f;
    pub const TYPED_OBJECT: u8 = 0x10;
}

/// One AMF0 value.
///
/// Strings longer than 65535 bytes are encoded as AMF0 long strings; both
/// string markers decode to [`Amf0Value::String`].
#[derive(Debug, Clone, PartialEq)]
pub enum Amf0Value {
    /// IEEE 754 double.
    Number(f64),
    /// Boolean.
    Boolean(bool),
    /// UTF-8 string (short or long form on the wire).
    String(String),
    /// Anonymous object; properties keep their wire order.
    Object(Vec<(String, Amf0Value)>),
    /// `null`.
    Null,
    /// `undefined`.
    Undefined,
    /// Associative array (used by `onMetaData`); the count hint is not kept.
    EcmaArray(Vec<(String, Amf0Value)>),
    /// Dense array.
    StrictArray(Vec<Amf0Value>),
    /// Milliseconds since the Unix epoch plus a (reserved) time zone.
    Date {
        /// Milliseconds since 1970-01-01 UTC.
        millis: f64,
        /// Time zone field; the spec says it should be 0.
        time_zone: i16,
    },
    /// XML document, carried as a long string.
    XmlDocument(String),
    /// Object with a registered class name.
    TypedObject {
        /// Class alias.
        class_name: String,
        /// Properties in wire order.
        properties: Vec<(String, Amf0Value)>,
    },
    /// The "unsupported" marker (a value with no representation).
    Unsupported,
}

/// Why AMF0 bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Amf0Error {
    /// The input ended in the middle of a value, or a declared length is
    /// longer than the remaining input.
    #[error("input ends in the middle of a value")]
    Truncated,
    /// Objects/arrays nested deeper than [`MAX_DEPTH`].
    #[error("values nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// More than [`MAX_VALUES`] values.
    #[error("more than {MAX_VALUES} values")]
    TooManyValues,
    /// A marker we do not decode (references, movie clips, AMF3 switch, ...).
    #[error("unsupported type marker 0x{0:02x}")]
    UnsupportedMarker(u8),
    /// A string was not UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
}

impl Amf0Value {
    /// Builds an [`Amf0Value::Object`] from `(key, value)` pairs.
    pub fn object<'a>(properties: impl IntoIterator<Item = (&'a str, Amf0Value)>) -> Self {
        Self::Object(properties.into_iter().map(|(key, value)| (key.to_owned(), value)).collect())
    }

    /// Looks up a property of an object, ECMA array or typed object.
    pub fn get(&self, key: &str) -> Option<&Amf0Value> {
        match self {
            Self::Object(properties) | Self::EcmaArray(properties) | Self::TypedObject { properties, .. } => {
                properties.iter().find(|(name, _)| name == key).map(|(_, value)| value)
            }
            _ => None,
        }
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number, if this is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The boolean, if this is a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Boolean(b) => Some(*b),
            _ => None,
        }
    }
}

impl From<&str> for Amf0Value {
    fn from(s: &str) -> Self {
        Self::String(s.to_owned())
    }
}

impl From<f64> for Amf0Value {
    fn from(n: f64) -> Self {
        Self::Number(n)
    }
}

impl From<bool> for Amf0Value {
    fn from(b: bool) -> Self {
        Self::Boolean(b)
    }
}

/// Decodes every value in `input` (a command or data message body).
pub fn decode_all(input: &[u8]) -> Result<Vec<Amf0Value>, Amf0Error> {
    let mut decoder = Decoder::new(input);
    let mut values = Vec::new();
    while decoder.pos < input.len() {
        values.push(decoder.value(0)?);
    }
    Ok(values)
}

/// Decodes the first value in `input` and returns it with the number of bytes
/// it occupied, so callers can slice off what follows without re-encoding.
pub fn decode_one(input: &[u8]) -> Result<(Amf0Value, usize), Amf0Error> {
    let mut decoder = Decoder::new(input);
    let value = decoder.value(0)?;
    Ok((value, decoder.pos))
}

/// Appends the AMF0 encoding of `value` to `out`.
pub fn encode(value: &Amf0Value, out: &mut BytesMut) {
    match value {
        Amf0Value::Number(n) => {
            out.put_u8(marker::NUMBER);
            out.put_f64(*n);
        }
        Amf0Value::Boolean(b) => {
            out.put_u8(marker::BOOLEAN);
            out.put_u8(u8::from(*b));
        }
        Amf0Value::String(s) => match u16::try_from(s.len()) {
            Ok(len) => {
                out.put_u8(marker::STRING);
                out.put_u16(len);
                out.put_slice(s.as_bytes());
            }
            Err(_) => {
                out.put_u8(marker::LONG_STRING);
                put_long_utf8(s, out);
            }
        },
        Amf0Value::Object(properties) => {
            out.put_u8(marker::OBJECT);
            encode_properties(properties, out);
        }
        Amf0Value::Null => out.put_u8(marker::NULL),
        Amf0Value::Undefined => out.put_u8(marker::UNDEFINED),
        Amf0Value::EcmaArray(properties) => {
            out.put_u8(marker::ECMA_ARRAY);
            out.put_u32(saturating_u32(properties.len()));
            encode_properties(properties, out);
        }
        Amf0Value::StrictArray(items) => {
            out.put_u8(marker::STRICT_ARRAY);
            out.put_u32(saturating_u32(items.len()));
            for item in items {
                encode(item, out);
            }
        }
        Amf0Value::Date { millis, time_zone } => {
            out.put_u8(marker::DATE);
            out.put_f64(*millis);
            out.put_i16(*time_zone);
        }
        Amf0Value::XmlDocument(s) => {
            out.put_u8(marker::XML_DOCUMENT);
            put_long_utf8(s, out);
        }
        Amf0Value::TypedObject { class_name, properties } => {
            out.put_u8(marker::TYPED_OBJECT);
            put_short_utf8(class_name, out);
            encode_properties(properties, out);
        }
        Amf0Value::Unsupported => out.put_u8(marker::UNSUPPORTED),
    }
}

fn encode_properties(properties: &[(String, Amf0Value)], out: &mut BytesMut) {
    for (key, value) in properties {
        put_short_utf8(key, out);
        encode(value, out);
    }
    out.put_u16(0);
    out.put_u8(marker::OBJECT_END);
}

/// Writes a u16-length-prefixed string. Keys and class names cannot exceed
/// 65535 bytes on the wire; longer ones (never produced by this crate) are
/// cut at a character boundary rather than corrupting the stream.
fn put_short_utf8(s: &str, out: &mut BytesMut) {
    let mut end = s.len().min(usize::from(u16::MAX));
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.put_u16(end as u16);
    out.put_slice(&s.as_bytes()[..end]);
}

/// Writes a u32-length-prefixed string. Messages are capped far below 4 GiB,
/// so the length always fits.
fn put_long_utf8(s: &str, out: &mut BytesMut) {
    out.put_u32(saturating_u32(s.len()));
    out.put_slice(s.as_bytes());
}

fn saturating_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    values: usize,
}

impl<'a> Decoder<'a> {
    fn new(input: &'a [u8]) -> Self {
        Self { input, pos: 0, values: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Amf0Error> {
        let remaining = self.input.len() - self.pos;
        if n > remaining {
            return Err(Amf0Error::Truncated);
        }
        let bytes = &self.input[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Amf0Error> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, Amf0Error> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, Amf0Error> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, Amf0Error> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn f64(&mut self) -> Result<f64, Amf0Error> {
        Ok(f64::from_be_bytes(self.array()?))
    }

    /// Reads `len` bytes as UTF-8. `take` checks `len` against the input
    /// before anything is allocated.
    fn utf8(&mut self, len: usize) -> Result<String, Amf0Error> {
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map(str::to_owned).map_err(|_| Amf0Error::InvalidUtf8)
    }

    fn short_utf8(&mut self) -> Result<String, Amf0Error> {
        let len = self.u16()?;
        self.utf8(usize::from(len))
    }

    fn long_utf8(&mut self) -> Result<String, Amf0Error> {
        let len = self.u32()?;
        self.utf8(usize::try_from(len).map_err(|_| Amf0Error::Truncated)?)
    }

    /// Decodes one value; `depth` is the number of enclosing containers.
    fn value(&mut self, depth: usize) -> Result<Amf0Value, Amf0Error> {
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(Amf0Error::TooManyValues);
        }
        let marker = self.u8()?;
        let is_container =
            matches!(marker, marker::OBJECT | marker::ECMA_ARRAY | marker::STRICT_ARRAY | marker::TYPED_OBJECT);
        if is_container && depth >= MAX_DEPTH {
            return Err(Amf0Error::TooDeep);
        }
        let value = match marker {
            marker::NUMBER => Amf0Value::Number(self.f64()?),
            marker::BOOLEAN => Amf0Value::Boolean(self.u8()? != 0),
            marker::STRING => Amf0Value::String(self.short_utf8()?),
            marker::OBJECT => Amf0Value::Object(self.properties(depth + 1)?),
            marker::NULL => Amf0Value::Null,
            marker::UNDEFINED => Amf0Value::Undefined,
            marker::ECMA_ARRAY => {
                // The count is only a hint (and often wrong); the end marker
                // terminates the array.
                self.u32()?;
                Amf0Value::EcmaArray(self.properties(depth + 1)?)
            }
            marker::STRICT_ARRAY => {
                let count = self.u32()?;
                // Never trust the count for allocation: every element takes
                // at least one byte, and MAX_VALUES bounds the total.
                let mut items = Vec::new();
                for _ in 0..count {
                    items.push(self.value(depth + 1)?);
                }
                Amf0Value::StrictArray(items)
            }
            marker::DATE => Amf0Value::Date { millis: self.f64()?, time_zone: i16::from_be_bytes(self.array()?) },
            marker::LONG_STRING => Amf0Value::String(self.long_utf8()?),
            marker::UNSUPPORTED => Amf0Value::Unsupported,
            marker::XML_DOCUMENT => Amf0Value::XmlDocument(self.long_utf8()?),
            marker::TYPED_OBJECT => {
                Amf0Value::TypedObject { class_name: self.short_utf8()?, properties: self.properties(depth + 1)? }
            }
            other => return Err(Amf0Error::UnsupportedMarker(other)),
        };
        Ok(value)
    }

    /// Reads `key, value` pairs up to the empty-key + object-end terminator.
    fn properties(&mut self, depth: usize) -> Result<Vec<(String, Amf0Value)>, Amf0Error> {
        let mut properties = Vec::new();
        loop {
            let key = self.short_utf8()?;
            if key.is_empty() && self.input.get(self.pos) == Some(&marker::OBJECT_END) {
                self.pos += 1;
                return Ok(properties);
            }
            let value = self.value(depth)?;
            properties.push((key, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(value: &Amf0Value) -> Amf0Value {
        let mut buf = BytesMut::new();
        encode(value, &mut buf);
        let (decoded, used) = decode_one(&buf).expect("decodes");
        assert_eq!(used, buf.len());
        decoded
    }

    #[test]
    fn round_trips_every_type() {
        let values = [
            Amf0Value::Number(-1.5),
            Amf0Value::Boolean(true),
            Amf0Value::from("héllo"),
            Amf0Value::String("x".repeat(70_000)),
            Amf0Value::object([("a", 1.0.into()), ("b", Amf0Value::Null)]),
            Amf0Value::Undefined,
            Amf0Value::EcmaArray(vec![("duration".into(), 0.0.into())]),
            Amf0Value::StrictArray(vec![Amf0Value::Null, "s".into()]),
            Amf0Value::Date { millis: 1e12, time_zone: 0 },
            Amf0Value::XmlDocument("<a/>".into()),
            Amf0Value::TypedObject { class_name: "C".into(), properties: vec![("k".into(), true.into())] },
            Amf0Value::Unsupported,
        ];
        for value in &values {
            assert_eq!(&round_trip(value), value);
        }
    }

    #[test]
    fn long_strings_use_the_long_marker() {
        let mut buf = BytesMut::new();
        encode(&Amf0Value::String("x".repeat(65_536)), &mut buf);
        assert_eq!(buf[0], marker::LONG_STRING);
        assert_eq!(&buf[1..5], &65_536u32.to_be_bytes());
    }

    #[test]
    fn decode_all_reads_a_command() {
        let mut buf = BytesMut::new();
        for v in [Amf0Value::from("connect"), 1.0.into(), Amf0Value::object([("app", "live".into())])] {
            encode(&v, &mut buf);
        }
        let values = decode_all(&buf).unwrap();
        assert_eq!(values[0].as_str(), Some("connect"));
        assert_eq!(values[1].as_f64(), Some(1.0));
        assert_eq!(values[2].get("app").and_then(Amf0Value::as_str), Some("live"));
        assert_eq!(values[2].get("missing"), None);
    }

    #[test]
    fn deep_nesting_is_rejected_without_overflowing_the_stack() {
        // 100k nested objects: each level is marker + empty key prefix.
        let mut buf = Vec::new();
        for _ in 0..100_000 {
            buf.extend_from_slice(&[marker::OBJECT, 0, 1, b'k']);
        }
        assert_eq!(decode_all(&buf), Err(Amf0Error::TooDeep));

        let arrays: Vec<u8> = (0..100_000).flat_map(|_| [marker::STRICT_ARRAY, 0, 0, 0, 1]).collect();
        assert_eq!(decode_all(&arrays), Err(Amf0Error::TooDeep));
    }

    #[test]
    fn nesting_up_to_the_limit_is_accepted() {
        let mut value = Amf0Value::Null;
        for _ in 0..MAX_DEPTH {
            value = Amf0Value::StrictArray(vec![value]);
        }
        assert_eq!(round_trip(&value), value);
        let too_deep = Amf0Value::StrictArray(vec![value]);
        let mut buf = BytesMut::new();
        encode(&too_deep, &mut buf);
        assert_eq!(decode_all(&buf), Err(Amf0Error::TooDeep));
    }

    #[test]
    fn truncated_and_oversized_lengths_are_errors() {
        // String declaring 10 bytes with 3 present.
        assert_eq!(decode_all(&[marker::STRING, 0, 10, b'a', b'b', b'c']), Err(Amf0Error::Truncated));
        // Long string and XML declaring 4 GiB.
        assert_eq!(decode_all(&[marker::LONG_STRING, 0xff, 0xff, 0xff, 0xff, b'a']), Err(Amf0Error::Truncated));
        assert_eq!(decode_all(&[marker::XML_DOCUMENT, 0xff, 0xff, 0xff, 0xff]), Err(Amf0Error::Truncated));
        // Strict array declaring 4 billion elements with none present.
        assert_eq!(decode_all(&[marker::STRICT_ARRAY, 0xff, 0xff, 0xff, 0xff]), Err(Amf0Error::Truncated));
        // Object without its end marker; truncated number.
        assert_eq!(decode_all(&[marker::OBJECT, 0, 1, b'a', marker::NULL]), Err(Amf0Error::Truncated));
        assert_eq!(decode_all(&[marker::NUMBER, 0, 0]), Err(Amf0Error::Truncated));
    }

    #[test]
    fn value_count_is_capped() {
        let mut buf = vec![marker::STRICT_ARRAY];
        buf.extend_from_slice(&(MAX_VALUES as u32 + 10).to_be_bytes());
        buf.resize(buf.len() + MAX_VALUES + 10, marker::NULL);
        assert_eq!(decode_all(&buf), Err(Amf0Error::TooManyValues));
    }

    #[test]
    fn references_and_amf3_are_unsupported() {
        assert_eq!(decode_all(&[0x07, 0, 0]), Err(Amf0Error::UnsupportedMarker(0x07)));
        assert_eq!(decode_all(&[0x11, 0x01]), Err(Amf0Error::UnsupportedMarker(0x11)));
        assert_eq!(decode_all(&[marker::STRING, 0, 2, 0xff, 0xfe]), Err(Amf0Error::InvalidUtf8));
    }

    fn arb_value() -> impl Strategy<Value = Amf0Value> {
        let leaf = prop_oneof![
            any::<f64>().prop_filter("NaN never compares equal", |n| !n.is_nan()).prop_map(Amf0Value::Number),
            any::<bool>().prop_map(Amf0Value::Boolean),
            ".{0,20}".prop_map(Amf0Value::String),
            Just(Amf0Value::Null),
            Just(Amf0Value::Undefined),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            let props = prop::collection::vec(("[a-z]{1,8}", inner.clone()), 0..8);
            prop_oneof![
                props.clone().prop_map(Amf0Value::Object),
                props.prop_map(Amf0Value::EcmaArray),
                prop::collection::vec(inner, 0..8).prop_map(Amf0Value::StrictArray),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_values_round_trip(value in arb_value()) {
            prop_assert_eq!(round_trip(&value), value);
        }

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_all(&bytes);
        }
    }
}
