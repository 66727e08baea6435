//! What formatting makes: the output as pieces of the input ([`Formatted`], borrowing it;
//! [`Document`], owning it), never assembled unless asked: written with vectored writes, read
//! through a [`Reader`], or fingerprinted, chunk by chunk.

use std::io::{self, Write};
use std::ops::Range;

use sha2::{Digest, Sha256};

use super::FeedError;

/// A document in its pretty form: the text it was formatted from (borrowed, [`Formatted`], or
/// owned, [`Document`]) and the layout made of it. The output is never assembled unless asked:
/// it goes out chunk by chunk, as often as wanted.
#[derive(Debug, Clone)]
pub struct Pretty<T> {
    text: T,
    layout: Layout,
    /// The output assembled, once [`Pretty::as_str`] asked for it.
    assembled: std::sync::OnceLock<String>,
}

/// A formatted document, borrowing the text it was formatted from.
pub type Formatted<'a> = Pretty<&'a str>;

/// A formatted document that owns its text: what a refresh holds between the check and the
/// store, which takes the output chunk by chunk ([`Pretty::write_to`] for a file,
/// [`Document::reader`] for a request body), as often as a retry needs.
pub type Document = Pretty<String>;

/// What formatting made of a document, without the document: the new declaration, the pieces
/// (offsets into the input), and where the volatile dates are. Owning nothing of the input, it
/// can outlive the borrow it was made under and be joined to the input's owner ([`Document`]).
#[derive(Debug, Clone)]
pub(in crate::feed) struct Layout {
    /// Bytes before the document proper in the text given to [`super::format`] (a BOM,
    /// whitespace): piece offsets count from after them.
    pub(super) skip: usize,
    pub(super) declaration: String,
    pub(super) pieces: Pieces,
    /// Output byte spans of the feed-level `lastBuildDate`/`pubDate` (RSS) and `updated` (Atom).
    pub(super) volatile: Vec<Range<usize>>,
    pub(super) as_written: bool,
}

/// A line break and the deepest indent; an indent is a prefix of it.
const INDENT: &str = "\n                                                                ";

/// Where a reading of the output stands: before the declaration, or after some pieces (with a
/// piece's slice still to come after its indent). Small and `Copy`, so a reader can step back.
#[derive(Debug, Clone, Copy, Default)]
struct Cursor {
    declared: bool,
    /// Offset in the piece codes.
    at: usize,
    /// Input offset where the last piece read ends.
    src_end: usize,
    /// The slice of the piece whose indent was just given.
    pending: Option<(usize, usize)>,
}

impl Layout {
    /// The next chunk of the output after `cursor`, which moves past it; `None` at the end.
    fn next_chunk<'s>(&'s self, src: &'s str, cursor: &mut Cursor) -> Option<&'s str> {
        if !cursor.declared {
            cursor.declared = true;
            if !self.declaration.is_empty() {
                return Some(&self.declaration);
            }
        }
        if let Some((start, end)) = cursor.pending.take() {
            return Some(&src[start..end]);
        }
        let bytes = &self.pieces.bytes;
        while cursor.at < bytes.len() {
            let indent = bytes[cursor.at];
            cursor.at += 1;
            let start = cursor.src_end + read_varint(bytes, &mut cursor.at);
            let end = start + read_varint(bytes, &mut cursor.at);
            cursor.src_end = end;
            if indent > 0 {
                cursor.pending = (end > start).then_some((start, end));
                return Some(&INDENT[..1 + 2 * usize::from(indent - 1)]);
            }
            if end > start {
                return Some(&src[start..end]);
            }
        }
        None
    }

    /// Calls `f` with the output in order: the declaration, then each indent and slice.
    fn each_chunk<'s, E>(&'s self, src: &'s str, mut f: impl FnMut(&'s str) -> Result<(), E>) -> Result<(), E> {
        let mut cursor = Cursor::default();
        while let Some(chunk) = self.next_chunk(src, &mut cursor) {
            f(chunk)?;
        }
        Ok(())
    }

    fn to_xml(&self, src: &str) -> String {
        let mut xml = String::with_capacity(self.pieces.len);
        self.each_chunk(src, |chunk| {
            xml.push_str(chunk);
            Ok::<_, std::convert::Infallible>(())
        })
        .unwrap_or_else(|never| match never {});
        xml
    }

    /// Linux's IOV_MAX: at most this many slices to a vectored write.
    const BATCH: usize = 1024;

    fn write_to(&self, src: &str, mut writer: impl Write) -> io::Result<()> {
        let mut slices = Vec::with_capacity(Self::BATCH);
        self.each_chunk(src, |chunk| {
            slices.push(io::IoSlice::new(chunk.as_bytes()));
            if slices.len() == Self::BATCH {
                write_all_vectored(&mut writer, &mut slices)?;
            }
            Ok::<_, io::Error>(())
        })?;
        write_all_vectored(&mut writer, &mut slices)?;
        writer.flush()
    }

    fn fingerprint(&self, src: &str) -> String {
        let mut hasher = Sha256::new();
        // The spans are in output order and never overlap.
        let mut spans = self.volatile.iter().peekable();
        let mut at = 0;
        self.each_chunk(src, |chunk| {
            let (from, to) = (at, at + chunk.len());
            let mut kept = from;
            while let Some(span) = spans.peek() {
                if span.start >= to {
                    break;
                }
                if span.start > kept {
                    hasher.update(&chunk.as_bytes()[kept - from..span.start - from]);
                }
                kept = kept.max(span.end.min(to));
                if span.end > to {
                    break;
                }
                spans.next();
            }
            if kept < to {
                hasher.update(&chunk.as_bytes()[kept - from..]);
            }
            at = to;
            Ok::<_, std::convert::Infallible>(())
        })
        .unwrap_or_else(|never| match never {});
        hex::encode(hasher.finalize())
    }
}

impl<T: AsRef<str>> Pretty<T> {
    /// `layout` joined to `text`, the text it was formatted from.
    pub(in crate::feed) fn join(text: T, layout: Layout) -> Self {
        assert!(
            layout.skip + layout.pieces.src_end <= text.as_ref().len(),
            "a layout joined to another text"
        );
        Pretty {
            text,
            layout,
            assembled: Default::default(),
        }
    }

    /// The text it was formatted from, as given.
    pub fn text(&self) -> &str {
        self.text.as_ref()
    }

    /// Length of the output in bytes.
    pub fn len(&self) -> usize {
        self.layout.pieces.len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the pretty form would have passed its size bound, so the document is kept as
    /// written (with a fresh UTF-8 declaration).
    pub fn as_written(&self) -> bool {
        self.layout.as_written
    }

    /// The output as one string, assembled on the first call and kept: a copy of the feed's
    /// size that [`Pretty::write_to`] never makes.
    pub fn as_str(&self) -> &str {
        self.assembled.get_or_init(|| self.to_xml())
    }

    /// The output as one string.
    pub fn to_xml(&self) -> String {
        match self.assembled.get() {
            Some(xml) => xml.clone(),
            None => self.layout.to_xml(self.src()),
        }
    }

    /// The output as one string, for a caller that wants it whole.
    pub fn into_xml(mut self) -> String {
        self.assembled.take().unwrap_or_else(|| self.to_xml())
    }

    /// Writes the output as it goes, never holding it whole: the pieces go out as they lie, up
    /// to a thousand to a vectored write, so not even a buffer copies them.
    pub fn write_to(&self, writer: impl Write) -> io::Result<()> {
        self.layout.write_to(self.src(), writer)
    }

    /// SHA-256 (hex) of the output with the volatile dates left out: two fetches that differ only
    /// in a freshly stamped build date are the same feed, so nothing is written.
    pub fn fingerprint(&self) -> String {
        self.layout.fingerprint(self.src())
    }

    #[cfg(test)]
    pub(super) fn layout(&self) -> &Layout {
        &self.layout
    }

    /// What it made of the text, to join to the text's owner once a borrow ends.
    pub(in crate::feed) fn into_layout(self) -> Layout {
        self.layout
    }

    /// The document proper: the text after what the walk skipped.
    fn src(&self) -> &str {
        &self.text.as_ref()[self.layout.skip..]
    }
}

impl Document {
    /// Formats `text` ([`super::format_within`]) and keeps it.
    pub fn format_within(text: String, max_bytes: usize) -> Result<Document, FeedError> {
        let layout = super::format_within(&text, max_bytes)?.into_layout();
        Ok(Document::join(text, layout))
    }

    /// The text it was formatted from, its layout dropped.
    pub fn into_text(self) -> String {
        self.text
    }

    /// A reader of the output from its first byte, sharing the document.
    pub fn reader(self: std::sync::Arc<Self>) -> Reader {
        Reader {
            document: self,
            cursor: Cursor::default(),
            taken: 0,
        }
    }
}

/// Reads a [`Document`]'s output, copying only into the caller's buffer.
#[derive(Debug)]
pub struct Reader {
    document: std::sync::Arc<Document>,
    cursor: Cursor,
    /// Bytes already read of the chunk at `cursor`.
    taken: usize,
}

impl io::Read for Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let document = &*self.document;
        let mut filled = 0;
        while filled < buf.len() {
            let before = self.cursor;
            let Some(chunk) = document.layout.next_chunk(document.src(), &mut self.cursor) else {
                break;
            };
            let rest = &chunk.as_bytes()[self.taken..];
            let n = rest.len().min(buf.len() - filled);
            buf[filled..filled + n].copy_from_slice(&rest[..n]);
            filled += n;
            if n < rest.len() {
                // The buffer is full mid-chunk: read the rest of this chunk next time.
                self.cursor = before;
                self.taken += n;
            } else {
                self.taken = 0;
            }
        }
        Ok(filled)
    }
}

/// Writes every slice, then empties the list.
fn write_all_vectored(writer: &mut impl Write, slices: &mut Vec<io::IoSlice<'_>>) -> io::Result<()> {
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match writer.write_vectored(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => io::IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    slices.clear();
    Ok(())
}

/// The output after the declaration, as pieces: per piece an indent code (0 for none, else one
/// more than the depth), then the gap since the previous piece's end and the slice's length in
/// the input, as LEB128 varints. Pieces run forward through the input.
#[derive(Debug, Clone, Default)]
pub(super) struct Pieces {
    pub(super) bytes: Vec<u8>,
    /// Input offset where the last piece ends.
    pub(super) src_end: usize,
    /// Output length so far, the declaration included.
    pub(super) len: usize,
}

/// Where the output stood, to roll back to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Mark {
    pub(super) bytes: usize,
    pub(super) src_end: usize,
    pub(super) len: usize,
}

pub(super) fn write_varint(bytes: &mut Vec<u8>, mut value: usize) {
    while value >= 0x80 {
        bytes.push((value as u8) | 0x80);
        value >>= 7;
    }
    bytes.push(value as u8);
}

fn read_varint(bytes: &[u8], at: &mut usize) -> usize {
    let mut value = 0;
    let mut shift = 0;
    loop {
        let byte = bytes[*at];
        *at += 1;
        value |= usize::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return value;
        }
        shift += 7;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(s: &str) -> String {
        super::super::format(s).unwrap().to_xml()
    }

    /// A document read through [`Reader`] with any buffer size, written with vectored writes,
    /// or assembled, is the same bytes, and a BOM and leading whitespace before it are skipped.
    #[test]
    fn a_document_reads_and_writes_as_it_assembles() {
        let text = "\u{feff}\n <?xml version='1.0' encoding='utf-8'?><rss><channel><title>中文 &amp; x</title>\
                    <lastBuildDate>now</lastBuildDate><item><title>一</title></item></channel></rss>";
        let expected = fmt(text);
        let document = std::sync::Arc::new(Document::format_within(text.to_string(), usize::MAX).unwrap());
        assert_eq!(document.to_xml(), expected);
        assert_eq!(document.len(), expected.len());
        assert_eq!(
            document.fingerprint(),
            super::super::format(text).unwrap().fingerprint()
        );
        assert_eq!(document.text(), text);
        let mut written = Vec::new();
        document.write_to(&mut written).unwrap();
        assert_eq!(written, expected.as_bytes());
        for size in [1, 2, 3, 7, 64, 1 << 16] {
            let mut reader = document.clone().reader();
            let mut read = Vec::new();
            let mut buf = vec![0; size];
            loop {
                let n = io::Read::read(&mut reader, &mut buf).unwrap();
                if n == 0 {
                    break;
                }
                assert!(
                    n == size || read.len() + n == expected.len(),
                    "a short read before the end"
                );
                read.extend_from_slice(&buf[..n]);
            }
            assert_eq!(String::from_utf8(read).unwrap(), expected, "buffer of {size}");
        }
    }
}
