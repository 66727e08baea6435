//! What a put writes: bytes held whole, or a document's output that is never assembled.

use std::io::{self, Write};
use std::sync::Arc;

/// The bytes of a put.
pub enum Body {
    /// Held whole: records, claims, a page.
    Bytes(Vec<u8>),
    /// A published feed's output, kept as pieces of the page it came from: the folder store
    /// writes them with vectored writes, S3 sends them as a body of known length, read afresh for
    /// each attempt. A refresh then holds the page and the pieces, never a second copy.
    Pieces(Arc<dyn Pieces>),
}

/// A body whose length is known up front and whose bytes can be gone through in order as
/// often as asked (a retried request reads them again).
pub trait Pieces: Send + Sync {
    /// Length in bytes.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Writes every byte in order, vectored where the writer takes it.
    fn write_to(&self, writer: &mut dyn Write) -> io::Result<()>;
    /// A reader from the first byte on.
    fn reader(self: Arc<Self>) -> Box<dyn io::Read + Send + Sync>;
}

impl Body {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Body::Bytes(bytes) => bytes.len(),
            Body::Pieces(pieces) => pieces.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes every byte in order.
    pub fn write_to(&self, writer: &mut dyn Write) -> io::Result<()> {
        match self {
            Body::Bytes(bytes) => writer.write_all(bytes),
            Body::Pieces(pieces) => pieces.write_to(writer),
        }
    }

    /// The bytes whole, for a store that keeps them so (the one in memory, for tests).
    pub fn into_vec(self) -> Vec<u8> {
        match self {
            Body::Bytes(bytes) => bytes,
            Body::Pieces(pieces) => {
                let mut bytes = Vec::with_capacity(pieces.len());
                pieces.write_to(&mut bytes).expect("writing to memory cannot fail");
                bytes
            }
        }
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Body::Bytes(bytes)
    }
}

impl From<String> for Body {
    fn from(text: String) -> Self {
        Body::Bytes(text.into_bytes())
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Bytes(bytes) => write!(f, "Body::Bytes({} bytes)", bytes.len()),
            Body::Pieces(pieces) => write!(f, "Body::Pieces({} bytes)", pieces.len()),
        }
    }
}

/// A document's output is such a body.
impl Pieces for crate::feed::Document {
    fn len(&self) -> usize {
        crate::feed::Document::len(self)
    }

    fn write_to(&self, writer: &mut dyn Write) -> io::Result<()> {
        crate::feed::Document::write_to(self, writer)
    }

    fn reader(self: Arc<Self>) -> Box<dyn io::Read + Send + Sync> {
        Box::new(crate::feed::Document::reader(self))
    }
}
