//! Reading structured values out of fuzz bytes. Every read succeeds: past the end, numbers are
//! zero and slices are short, so any input maps to some value and mutations stay meaningful.

/// A cursor over one fuzz input.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    rest: &'a [u8],
}

impl<'a> Input<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Input { rest: data }
    }

    /// The next byte, or 0.
    pub fn byte(&mut self) -> u8 {
        match self.rest.split_first() {
            Some((&b, rest)) => {
                self.rest = rest;
                b
            }
            None => 0,
        }
    }

    /// The next two bytes, big-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    /// The next four bytes, big-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    /// The next eight bytes, big-endian.
    pub fn u64(&mut self) -> u64 {
        (u64::from(self.u32()) << 32) | u64::from(self.u32())
    }

    /// The next sixteen bytes (zero-padded).
    pub fn array16(&mut self) -> [u8; 16] {
        let mut out = [0; 16];
        let taken = self.take(16);
        out[..taken.len()].copy_from_slice(taken);
        out
    }

    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.rest.split_at(n.min(self.rest.len()));
        self.rest = tail;
        head
    }

    /// A length read from the input (one byte, or two when `max` exceeds 255), then that many
    /// bytes, at most `max`.
    pub fn sized(&mut self, max: usize) -> &'a [u8] {
        let n = if max > 255 {
            usize::from(self.u16())
        } else {
            usize::from(self.byte())
        };
        self.take(n % (max + 1))
    }

    /// A [`Self::sized`] slice as text (invalid UTF-8 replaced).
    pub fn string(&mut self, max: usize) -> String {
        String::from_utf8_lossy(self.sized(max)).into_owned()
    }

    /// Everything not read yet (which is then read).
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }
}
