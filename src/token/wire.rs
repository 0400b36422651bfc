//! The byte packing both token formats share: little-endian integers, strings and maps
//! with a `u16` length prefix. `PackWriter` builds, `PackReader` parses; a truncated buffer is a
//! `Truncated` error, never a panic.

use std::collections::BTreeMap;

/// A parse ran out of bytes (or met a length it cannot hold): the token is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the token ends too early")]
pub(super) struct Truncated;

/// Appends values in Agora's packing to a byte buffer.
#[derive(Debug, Default)]
pub(super) struct PackWriter {
    bytes: Vec<u8>,
}

impl PackWriter {
    pub(super) fn new() -> Self {
        Self::default()
    }

    pub(super) fn u16(&mut self, value: u16) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub(super) fn i16(&mut self, value: i16) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub(super) fn u32(&mut self, value: u32) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// A `u16` length, then the bytes. Longer inputs cannot be packed; callers only pass
    /// ids, signatures and short messages, so this is a programming error.
    pub(super) fn bytes(&mut self, value: &[u8]) -> &mut Self {
        let len = u16::try_from(value.len()).expect("packed strings are shorter than 64 KiB");
        self.u16(len);
        self.bytes.extend_from_slice(value);
        self
    }

    /// Bytes already packed elsewhere, appended as they are.
    pub(super) fn raw(&mut self, value: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(value);
        self
    }

    /// A `u16` count, then `u16` key and `u32` value pairs in key order.
    pub(super) fn map_u32(&mut self, map: &BTreeMap<u16, u32>) -> &mut Self {
        let len = u16::try_from(map.len()).expect("privilege maps hold fewer than 64 Ki entries");
        self.u16(len);
        for (&key, &value) in map {
            self.u16(key).u32(value);
        }
        self
    }

    pub(super) fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.bytes)
    }
}

/// Reads values in Agora's packing from the front of a byte slice.
#[derive(Debug, Clone)]
pub(super) struct PackReader<'a> {
    rest: &'a [u8],
}

impl<'a> PackReader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// What has not been read yet.
    pub(super) fn rest(&self) -> &'a [u8] {
        self.rest
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], Truncated> {
        if self.rest.len() < len {
            return Err(Truncated);
        }
        let (head, tail) = self.rest.split_at(len);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Truncated> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    pub(super) fn u16(&mut self) -> Result<u16, Truncated> {
        self.array().map(u16::from_le_bytes)
    }

    pub(super) fn i16(&mut self) -> Result<i16, Truncated> {
        self.array().map(i16::from_le_bytes)
    }

    pub(super) fn u32(&mut self) -> Result<u32, Truncated> {
        self.array().map(u32::from_le_bytes)
    }

    pub(super) fn bytes(&mut self) -> Result<&'a [u8], Truncated> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    /// A packed string as text; Agora's builders write UTF-8, anything else is replaced
    /// rather than refused so `inspect` can still show the rest of the token.
    pub(super) fn string(&mut self) -> Result<String, Truncated> {
        self.bytes()
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
    }

    pub(super) fn map_u32(&mut self) -> Result<BTreeMap<u16, u32>, Truncated> {
        let len = self.u16()?;
        let mut map = BTreeMap::new();
        for _ in 0..len {
            let key = self.u16()?;
            let value = self.u32()?;
            map.insert(key, value);
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_in_little_endian() {
        let map = BTreeMap::from([(1000, 7), (1, 0x0102_0304)]);
        let bytes = PackWriter::new()
            .u16(0x0102)
            .u32(0x0A0B_0C0D)
            .bytes(b"ab")
            .map_u32(&map)
            .i16(-1)
            .finish();
        assert_eq!(&bytes[..8], &[2, 1, 0x0D, 0x0C, 0x0B, 0x0A, 2, 0]);
        let mut reader = PackReader::new(&bytes);
        assert_eq!(reader.u16(), Ok(0x0102));
        assert_eq!(reader.u32(), Ok(0x0A0B_0C0D));
        assert_eq!(reader.string().as_deref(), Ok("ab"));
        assert_eq!(reader.map_u32(), Ok(map));
        assert_eq!(reader.i16(), Ok(-1));
        assert!(reader.rest().is_empty());
    }

    #[test]
    fn short_input_is_truncated_not_a_panic() {
        assert_eq!(PackReader::new(&[1]).u16(), Err(Truncated));
        assert_eq!(PackReader::new(&[5, 0, b'a']).bytes(), Err(Truncated));
        assert_eq!(PackReader::new(&[2, 0, 1, 0]).map_u32(), Err(Truncated));
    }
}
