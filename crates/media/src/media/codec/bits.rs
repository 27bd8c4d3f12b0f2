//! Bounds-checked readers over untrusted bytes. Running out of data is reported as
//! [`CodecError::Truncated`] naming what was being read, never as a panic.

use super::CodecError;

/// Big-endian byte cursor.
pub(super) struct ByteReader<'a> {
    data: &'a [u8],
}

impl<'a> ByteReader<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
        ByteReader { data }
    }

    /// The bytes not read yet.
    pub(super) fn rest(&self) -> &'a [u8] {
        self.data
    }

    pub(super) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CodecError> {
        if n > self.data.len() {
            return Err(CodecError::Truncated(what));
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Ok(head)
    }

    pub(super) fn skip(&mut self, n: usize, what: &'static str) -> Result<(), CodecError> {
        self.take(n, what).map(drop)
    }

    pub(super) fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], CodecError> {
        let (head, tail) = self.data.split_first_chunk::<N>().ok_or(CodecError::Truncated(what))?;
        self.data = tail;
        Ok(*head)
    }

    pub(super) fn u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        self.array::<1>(what).map(|[b]| b)
    }

    pub(super) fn u16(&mut self, what: &'static str) -> Result<u16, CodecError> {
        self.array(what).map(u16::from_be_bytes)
    }

    pub(super) fn u24(&mut self, what: &'static str) -> Result<u32, CodecError> {
        let [a, b, c] = self.array(what)?;
        Ok(u32::from_be_bytes([0, a, b, c]))
    }

    /// Signed 24-bit value, as used for composition time offsets.
    pub(super) fn i24(&mut self, what: &'static str) -> Result<i32, CodecError> {
        let [a, b, c] = self.array(what)?;
        // Place the 24 bits at the top of an i32, then shift back to sign-extend.
        Ok(i32::from_be_bytes([a, b, c, 0]) >> 8)
    }
}

/// MSB-first bit reader, optionally over the payload of an H.264/H.265 NAL unit, in
/// which case emulation-prevention bytes (the `03` of `00 00 03`) are skipped on the
/// fly to read the raw byte sequence payload without copying it.
pub(super) struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    current: u8,
    /// Unread bits left in `current`.
    bits_left: u8,
    /// Consecutive zero bytes just read, to spot emulation prevention.
    zeros: u8,
    strip_emulation_prevention: bool,
    what: &'static str,
}

impl<'a> BitReader<'a> {
    pub(super) fn new(data: &'a [u8], what: &'static str) -> Self {
        BitReader { data, pos: 0, current: 0, bits_left: 0, zeros: 0, strip_emulation_prevention: false, what }
    }

    /// Reader over a NAL unit payload (after its header).
    pub(super) fn rbsp(nal_payload: &'a [u8], what: &'static str) -> Self {
        BitReader { strip_emulation_prevention: true, ..Self::new(nal_payload, what) }
    }

    fn next_byte(&mut self) -> Result<u8, CodecError> {
        loop {
            let byte = *self.data.get(self.pos).ok_or(CodecError::Truncated(self.what))?;
            self.pos += 1;
            if self.strip_emulation_prevention && self.zeros >= 2 && byte == 0x03 {
                self.zeros = 0;
                continue;
            }
            self.zeros = if byte == 0 { self.zeros.saturating_add(1) } else { 0 };
            return Ok(byte);
        }
    }

    pub(super) fn bit(&mut self) -> Result<bool, CodecError> {
        if self.bits_left == 0 {
            self.current = self.next_byte()?;
            self.bits_left = 8;
        }
        self.bits_left -= 1;
        Ok((self.current >> self.bits_left) & 1 == 1)
    }

    /// Reads `n` bits (at most 32) as an unsigned value.
    pub(super) fn bits(&mut self, n: u8) -> Result<u32, CodecError> {
        debug_assert!(n <= 32);
        let mut value = 0u32;
        for _ in 0..n {
            value = (value << 1) | u32::from(self.bit()?);
        }
        Ok(value)
    }

    pub(super) fn skip(&mut self, n: u32) -> Result<(), CodecError> {
        for _ in 0..n {
            self.bit()?;
        }
        Ok(())
    }

    /// Unsigned exp-Golomb code, `ue(v)`.
    pub(super) fn ue(&mut self) -> Result<u32, CodecError> {
        let mut leading_zeros = 0u8;
        while !self.bit()? {
            leading_zeros += 1;
            // 32 or more leading zeros cannot encode a 32-bit value.
            if leading_zeros > 31 {
                return Err(CodecError::Invalid("exp-Golomb code"));
            }
        }
        let suffix = self.bits(leading_zeros)?;
        Ok(((1u32 << leading_zeros) - 1) + suffix)
    }

    /// Signed exp-Golomb code, `se(v)`.
    pub(super) fn se(&mut self) -> Result<i64, CodecError> {
        let k = i64::from(self.ue()?);
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_reader_reads_big_endian_and_reports_truncation() {
        let mut r = ByteReader::new(&[1, 2, 3, 0xff, 0xff, 0xfe, 9]);
        assert_eq!(r.u16("a"), Ok(0x0102));
        assert_eq!(r.u8("b"), Ok(3));
        assert_eq!(r.i24("c"), Ok(-2));
        assert_eq!(r.u16("d"), Err(CodecError::Truncated("d")));
        assert_eq!(r.rest(), &[9]);
        assert_eq!(ByteReader::new(&[0x7f, 0xff, 0xff]).i24("e"), Ok(0x7f_ffff));
        assert_eq!(ByteReader::new(&[0x80, 0, 0]).i24("e"), Ok(-0x80_0000));
    }

    #[test]
    fn exp_golomb_codes() {
        // 1 | 010 | 011 | 00100 | 00101 => ue 0, 1, 2, 3, 4
        let data = [0b1010_0110, 0b0100_0010, 0b1000_0000];
        let mut r = BitReader::new(&data, "t");
        let values: Vec<u32> = (0..5).map(|_| r.ue().unwrap()).collect();
        assert_eq!(values, [0, 1, 2, 3, 4]);
        // se: codes 1, 2, 3, 4 => 1, -1, 2, -2
        let mut r = BitReader::new(&data[..], "t");
        r.skip(1).unwrap();
        let values: Vec<i64> = (0..4).map(|_| r.se().unwrap()).collect();
        assert_eq!(values, [1, -1, 2, -2]);
    }

    #[test]
    fn overlong_exp_golomb_is_invalid_not_a_panic() {
        let data = [0u8; 8];
        assert_eq!(BitReader::new(&data, "t").ue(), Err(CodecError::Invalid("exp-Golomb code")));
        let mut max = [0u8; 9];
        max[3] = 0x01; // 31 zeros, the marker, then 31 one bits
        max[4..8].fill(0xff);
        assert_eq!(BitReader::new(&max, "t").ue(), Ok(u32::MAX - 1));
        assert_eq!(BitReader::new(&[0x00], "t").ue(), Err(CodecError::Truncated("t")));
    }

    #[test]
    fn emulation_prevention_bytes_are_skipped() {
        let nal = [0x00, 0x00, 0x03, 0x01, 0x00, 0x00, 0x03, 0x03];
        let mut r = BitReader::rbsp(&nal, "t");
        let bytes: Vec<u32> = (0..5).map(|_| r.bits(8).unwrap()).collect();
        assert_eq!(bytes, [0x00, 0x00, 0x01, 0x00, 0x00]);
        // The second 03 follows a removed one, so it is data.
        assert_eq!(r.bits(8), Ok(0x03));
        assert!(r.bit().is_err());
        // A plain reader keeps them.
        let mut plain = BitReader::new(&nal, "t");
        plain.skip(16).unwrap();
        assert_eq!(plain.bits(8), Ok(0x03));
    }
}
