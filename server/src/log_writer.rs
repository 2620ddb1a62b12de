//! The background writer of the JSON logs on stderr: a slow terminal or
//! pipe never stalls a decision, and lines logged close together leave in
//! one `write`.
//!
//! Replaces `tracing_appender::non_blocking`, which woke its writer thread
//! for every line (a futex wake on the worker that logged it) and wrote
//! each line with a `write` of its own, its thread spinning with
//! `sched_yield` between lines. With the decision log's default sampling
//! that was about 1% of the requests: under `wrk` the writer thread took
//! about 0.4 µs of CPU per request (`perf record`, 2026-11-23).
//!
//! Here a worker thread appends its formatted line to a shared buffer
//! under a short lock and wakes the writer only if the writer is waiting
//! for work. The writer takes everything buffered, writes it, and then
//! waits [`WINDOW`] before taking more (a single line after a quiet spell
//! is written at once; a busy server writes at most about once per window).
//! Like the appender's default, it is lossy: beyond [`MAX_LINES`] buffered
//! lines, new ones are dropped rather than blocking the caller.

use std::io::{self, Write};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use tracing_subscriber::fmt::MakeWriter;

/// How long the writer gathers lines after a write before writing again.
pub const WINDOW: Duration = Duration::from_millis(20);

/// Lines buffered at most (`tracing_appender`'s default limit); more are dropped.
pub const MAX_LINES: usize = 128_000;

/// How long dropping the guard waits for the last lines to be written.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(1);

#[derive(Default)]
struct State {
    buf: Vec<u8>,
    lines: usize,
    /// The writer thread is parked waiting for a line.
    waiting: bool,
    stop: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

/// The `tracing_subscriber` writer: each formatted event is one `write_all`.
#[derive(Clone)]
pub struct BatchWriter {
    shared: Arc<Shared>,
}

/// Writes what is still buffered when dropped (waiting at most a second).
pub struct Guard {
    shared: Arc<Shared>,
    done: mpsc::Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the writer thread over `out`.
pub fn spawn<W: Write + Send + 'static>(out: W) -> io::Result<(BatchWriter, Guard)> {
    let shared = Arc::new(Shared::default());
    let (done_tx, done) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("portcullis-log".into())
        .spawn({
            let shared = Arc::clone(&shared);
            move || {
                run(&shared, out);
                let _ = done_tx.send(());
            }
        })?;
    Ok((
        BatchWriter {
            shared: Arc::clone(&shared),
        },
        Guard {
            shared,
            done,
            thread: Some(thread),
        },
    ))
}

fn run<W: Write>(shared: &Shared, mut out: W) {
    let mut batch = Vec::new();
    loop {
        let stop = {
            let mut st = shared.state.lock();
            while st.buf.is_empty() && !st.stop {
                st.waiting = true;
                shared.wake.wait(&mut st);
            }
            st.waiting = false;
            // The emptied batch's memory becomes the next buffer.
            std::mem::swap(&mut st.buf, &mut batch);
            st.lines = 0;
            st.stop
        };
        if !batch.is_empty() {
            // Nowhere to report a failed write to stderr: the lines are lost.
            let _ = out.write_all(&batch);
            let _ = out.flush();
            batch.clear();
        }
        if stop {
            // The batch taken under the lock that saw `stop` was the last:
            // nothing is appended after `stop` (see `append`).
            return;
        }
        // Gather: lines logged meanwhile do not wake this thread.
        let mut st = shared.state.lock();
        if !st.stop {
            let _ = shared.wake.wait_for(&mut st, WINDOW);
        }
    }
}

impl Shared {
    fn append(&self, line: &[u8]) {
        let mut st = self.state.lock();
        if st.stop || st.lines >= MAX_LINES {
            return;
        }
        st.buf.extend_from_slice(line);
        st.lines += 1;
        let wake = std::mem::replace(&mut st.waiting, false);
        drop(st);
        if wake {
            self.wake.notify_one();
        }
    }
}

impl Write for &BatchWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.shared.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = &'a BatchWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.shared.state.lock().stop = true;
        self.shared.wake.notify_one();
        // A writer stuck on a full pipe is left behind after a second.
        if self.done.recv_timeout(SHUTDOWN_WAIT).is_ok() {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records each `write` it gets.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn line(t: usize, i: usize) -> String {
        format!("{{\"thread\":{t},\"line\":{i}}}\n")
    }

    #[test]
    fn every_line_arrives_whole_and_in_order_per_thread_and_bursts_share_writes() {
        let sink = Sink::default();
        let (writer, guard) = spawn(sink.clone()).unwrap();
        std::thread::scope(|s| {
            for t in 0..4 {
                let w = writer.clone();
                s.spawn(move || {
                    for i in 0..2_000 {
                        (&w).write_all(line(t, i).as_bytes()).unwrap();
                    }
                });
            }
        });
        drop(guard);
        let writes = sink.0.lock().clone();
        let all: Vec<u8> = writes.concat();
        let text = String::from_utf8(all).unwrap();
        let mut next = [0usize; 4];
        for l in text.lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let t = v["thread"].as_u64().unwrap() as usize;
            assert_eq!(v["line"].as_u64().unwrap() as usize, next[t], "{l}");
            next[t] += 1;
        }
        assert_eq!(next, [2_000; 4]);
        // 8,000 lines in a burst: nowhere near one write each.
        assert!(writes.len() < 800, "{} writes", writes.len());
    }

    #[test]
    fn a_lone_line_is_written_at_once() {
        let sink = Sink::default();
        let (writer, _guard) = spawn(sink.clone()).unwrap();
        (&writer).write_all(b"one\n").unwrap();
        let t = std::time::Instant::now();
        while sink.0.lock().is_empty() {
            assert!(t.elapsed() < Duration::from_secs(5), "never written");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(sink.0.lock().concat(), b"one\n");
    }

    #[test]
    fn beyond_the_limit_lines_are_dropped_not_blocked_on() {
        /// Blocks every write until told to go on.
        struct Stuck(Arc<(Mutex<bool>, Condvar)>, Sink);
        impl Write for Stuck {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                let (go, cv) = &*self.0;
                let mut go = go.lock();
                while !*go {
                    cv.wait(&mut go);
                }
                self.1.write(buf)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let sink = Sink::default();
        let (writer, guard) = spawn(Stuck(Arc::clone(&gate), sink.clone())).unwrap();
        // The first line is taken by the writer, which then blocks on it.
        (&writer).write_all(b"first\n").unwrap();
        let t = std::time::Instant::now();
        while !writer.shared.state.lock().buf.is_empty() {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "the writer never took it"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        for _ in 0..MAX_LINES + 100 {
            (&writer).write_all(b"x\n").unwrap();
        }
        assert_eq!(writer.shared.state.lock().lines, MAX_LINES);
        *gate.0.lock() = true;
        gate.1.notify_all();
        drop(guard);
        let all = sink.0.lock().concat();
        assert!(all.starts_with(b"first\n"));
        assert_eq!(all.len(), "first\n".len() + 2 * MAX_LINES);
    }
}
