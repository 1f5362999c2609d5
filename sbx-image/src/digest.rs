//! Hashing helpers shared by the fetcher, the layer writer and the tree hash.

use std::io::{self, Write};

use sbx_mise::lockfile::model::Checksum;
use sha2::{Digest, Sha256, Sha512};

/// An incremental hasher for the algorithm a [`Checksum`] uses.
pub enum ContentHasher {
    /// SHA-256.
    Sha256(Sha256),
    /// SHA-512.
    Sha512(Sha512),
}

impl ContentHasher {
    /// A fresh hasher for the same algorithm as `expected`.
    pub fn for_checksum(expected: &Checksum) -> Self {
        match expected {
            Checksum::Sha256(_) => Self::Sha256(Sha256::new()),
            Checksum::Sha512(_) => Self::Sha512(Sha512::new()),
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Sha256(h) => h.update(bytes),
            Self::Sha512(h) => h.update(bytes),
        }
    }

    /// The final checksum.
    pub fn finish(self) -> Checksum {
        match self {
            Self::Sha256(h) => Checksum::Sha256(hex::encode(h.finalize())),
            Self::Sha512(h) => Checksum::Sha512(hex::encode(h.finalize())),
        }
    }
}

/// `sha256:<hex>` of a byte slice, the OCI digest form.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A writer that hashes (SHA-256) and counts everything passing through to `inner`.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self { inner, hasher: Sha256::new(), count: 0 }
    }

    /// Returns the inner writer, the `sha256:<hex>` digest and the byte count.
    pub fn finish(self) -> (W, String, u64) {
        (self.inner, format!("sha256:{}", hex::encode(self.hasher.finalize())), self.count)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        assert_eq!(sha256_digest(b""), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"abc").unwrap();
        let (inner, digest, n) = w.finish();
        assert_eq!((inner.len(), n), (3, 3));
        assert_eq!(digest, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let mut h = ContentHasher::for_checksum(&Checksum::Sha512(String::new()));
        h.update(b"abc");
        assert!(h.finish().hex().starts_with("ddaf35a193617aba"));
    }
}
