//! Bodies sent as they are written: a full profile of hundreds of
//! thousands of stacks runs to hundreds of megabytes, and is never held
//! whole. The writer runs on the blocking pool and hands the body over in
//! chunks through a small bounded channel, so it waits while the client
//! reads and at most a few chunks are in memory at once; a client that goes
//! away stops it.

use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue};
use axum::response::Response;
use http_body::Frame;
use tokio::sync::mpsc;

/// The size of one chunk of the body.
const CHUNK_BYTES: usize = 64 << 10;
/// Chunks written and not yet sent.
const CHUNKS_IN_FLIGHT: usize = 4;

/// A response with `content_type` whose body `write` writes, on the
/// blocking pool, while it is sent. If writing fails part-way the body
/// ends in an error, so the client sees it cut short rather than complete.
pub(super) fn streamed<F>(content_type: &'static str, write: F) -> Response
where
    F: FnOnce(&mut dyn Write) -> io::Result<()> + Send + 'static,
{
    let (sender, receiver) = mpsc::channel(CHUNKS_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let mut out = ChunkWriter {
            sender,
            chunk: Vec::with_capacity(CHUNK_BYTES),
        };
        if let Err(e) = write(&mut out).and_then(|()| out.send()) {
            if e.kind() != io::ErrorKind::BrokenPipe {
                eprintln!("memprof: http: writing a streamed body: {e}");
            }
            let _ = out.sender.blocking_send(Err(e));
        }
    });
    let mut response = Response::new(Body::new(Chunks(receiver)));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Collects writes into chunks and sends each when full.
struct ChunkWriter {
    sender: mpsc::Sender<io::Result<Bytes>>,
    chunk: Vec<u8>,
}

impl ChunkWriter {
    /// Sends what was written since the last chunk, waiting for room.
    fn send(&mut self) -> io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK_BYTES));
        self.sender
            .blocking_send(Ok(Bytes::from(chunk)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.chunk.extend_from_slice(buf);
        if self.chunk.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(buf.len())
    }

    /// Nothing: a chunk goes when full, the last when writing ends.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The receiving end, as a body.
struct Chunks(mpsc::Receiver<io::Result<Bytes>>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.get_mut()
            .0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| c.map(Frame::data)))
    }
}
