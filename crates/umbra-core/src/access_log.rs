//! The JSON access log's writer (data plane side, no waiting): the request path hands each
//! line to a bounded channel and never blocks on it — when the writer falls behind, the line
//! is dropped and counted (`umbra_access_log_dropped_total`). A background thread writes the
//! lines to stdout or to a file rotated by size (`access.log` → `access.log.1` → … →
//! `access.log.<keep>`, the oldest deleted), flushing whenever the queue runs dry.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;

use prometheus_client::metrics::counter::Counter;

use crate::config::{AccessLogFile, LogConfig};

/// Lines queued at most between the request path and the writer.
const QUEUE: usize = 64 * 1024;

/// The access log: `write_line` enqueues, a thread writes.
pub struct AccessLog {
    tx: Option<SyncSender<String>>,
    writer: Option<JoinHandle<()>>,
    dropped: Counter,
    pub enabled: bool,
}

impl AccessLog {
    /// The log `cfg` asks for: to its file when it names one (opened now, so a path that
    /// cannot be written is known at start), else to stdout.
    pub fn open(cfg: &LogConfig, dropped: Counter) -> io::Result<AccessLog> {
        let sink: Box<dyn Write + Send> = match &cfg.file {
            Some(file) => Box::new(Rotating::open(file)?),
            None => Box::new(BufWriter::new(io::stdout())),
        };
        Ok(AccessLog::to(sink, QUEUE, dropped, cfg.access))
    }

    /// A log written to `sink` with `queue` lines of room; lines that find no room count on
    /// `dropped`.
    pub fn to(
        sink: Box<dyn Write + Send>,
        queue: usize,
        dropped: Counter,
        enabled: bool,
    ) -> AccessLog {
        let (tx, rx) = mpsc::sync_channel(queue);
        let writer = std::thread::Builder::new()
            .name("umbra-access-log".into())
            .spawn(move || write_lines(rx, sink))
            .expect("spawn the access-log writer");
        AccessLog {
            tx: Some(tx),
            writer: Some(writer),
            dropped,
            enabled,
        }
    }

    /// Queues one line (ending in `\n`); drops and counts it when the queue is full.
    pub fn write_line(&self, line: String) {
        if let Some(tx) = &self.tx {
            if let Err(TrySendError::Full(_)) = tx.try_send(line) {
                self.dropped.inc();
            }
        }
    }
}

impl Drop for AccessLog {
    /// Writes what is queued before the process goes on (the writer ends with the channel).
    fn drop(&mut self) {
        self.tx.take();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// The writer thread: every line, a flush each time the queue is empty.
fn write_lines(rx: Receiver<String>, mut sink: Box<dyn Write + Send>) {
    let mut failing = false;
    while let Ok(line) = rx.recv() {
        let mut result = sink.write_all(line.as_bytes());
        while let Ok(line) = rx.try_recv() {
            result = result.and(sink.write_all(line.as_bytes()));
        }
        result = result.and(sink.flush());
        match result {
            // Said once per run of failures, not once per line.
            Err(e) if !failing => {
                tracing::error!(error = %e, "the access log cannot be written");
                failing = true;
            }
            Err(_) => {}
            Ok(()) => failing = false,
        }
    }
}

/// A file rotated once the next line would take it past `max_size` (a line is never split;
/// a line longer than `max_size` gets a file of its own).
pub struct Rotating {
    path: PathBuf,
    max_size: u64,
    keep: u32,
    file: BufWriter<File>,
    size: u64,
}

impl Rotating {
    /// Opens (appends to) the file.
    pub fn open(cfg: &AccessLogFile) -> io::Result<Rotating> {
        let file = append(&cfg.path)?;
        let size = file.metadata()?.len();
        Ok(Rotating {
            path: cfg.path.clone(),
            max_size: cfg.max_size,
            keep: cfg.keep,
            file: BufWriter::new(file),
            size,
        })
    }

    fn numbered(&self, n: u32) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        name.into()
    }

    /// `file.<keep-1>` → `file.<keep>`, …, `file` → `file.1`, and a new `file`.
    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            for n in (1..self.keep).rev() {
                match std::fs::rename(self.numbered(n), self.numbered(n + 1)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            std::fs::rename(&self.path, self.numbered(1))?;
        }
        self.file = BufWriter::new(append(&self.path)?);
        self.size = 0;
        Ok(())
    }
}

fn append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl Write for Rotating {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.size > 0 && self.size + buf.len() as u64 > self.max_size {
            self.rotate()?;
        }
        self.file.write_all(buf)?;
        self.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    fn rotating(dir: &Path, max_size: u64, keep: u32) -> Rotating {
        Rotating::open(&AccessLogFile {
            path: dir.join("access.log"),
            max_size,
            keep,
        })
        .expect("open")
    }

    fn read(dir: &Path, name: &str) -> Option<String> {
        std::fs::read_to_string(dir.join(name)).ok()
    }

    #[test]
    fn rotates_at_the_size_and_keeps_keep_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = rotating(dir.path(), 20, 2);
        for i in 0..7 {
            // 10 bytes a line: two lines a file.
            log.write_all(format!("line {i:03}\n").as_bytes()).unwrap();
        }
        log.flush().unwrap();
        assert_eq!(read(dir.path(), "access.log").unwrap(), "line 006\n");
        assert_eq!(
            read(dir.path(), "access.log.1").unwrap(),
            "line 004\nline 005\n"
        );
        assert_eq!(
            read(dir.path(), "access.log.2").unwrap(),
            "line 002\nline 003\n"
        );
        assert_eq!(read(dir.path(), "access.log.3"), None, "keep = 2");
    }

    #[test]
    fn reopening_appends_and_counts_what_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = rotating(dir.path(), 20, 1);
        log.write_all(b"line 000\n").unwrap();
        log.flush().unwrap();
        drop(log);
        let mut log = rotating(dir.path(), 20, 1);
        log.write_all(b"line 001\n").unwrap();
        log.write_all(b"line 002\n").unwrap();
        log.flush().unwrap();
        assert_eq!(
            read(dir.path(), "access.log.1").unwrap(),
            "line 000\nline 001\n"
        );
        assert_eq!(read(dir.path(), "access.log").unwrap(), "line 002\n");
    }

    /// A sink that holds its first write until the test lets it go.
    struct Stuck(Arc<Barrier>, Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Stuck {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.1.lock().unwrap().is_empty() {
                self.0.wait();
            }
            self.1.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let gate = Arc::new(Barrier::new(2));
        let out = Arc::new(std::sync::Mutex::new(Vec::new()));
        let dropped = Counter::default();
        let log = AccessLog::to(
            Box::new(Stuck(gate.clone(), out.clone())),
            4,
            dropped.clone(),
            true,
        );
        // The writer takes line 0 and sticks on it; 4 more fill the queue; the rest drop.
        for i in 0..20 {
            log.write_line(format!("{i}\n"));
        }
        assert!(dropped.get() >= 15, "dropped {}", dropped.get());
        gate.wait();
        drop(log);
        let written = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        assert_eq!(
            written.lines().count() as u64 + dropped.get(),
            20,
            "{written}"
        );
    }
}
