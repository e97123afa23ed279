//! Where the JSON lines go: stdout, or a file that is appended to.
//!
//! A [`Sink`] buffers lines and makes them durable on [`Sink::commit`] (flush,
//! and fsync for files); `pull` moves its state only after that. For files it
//! also undoes what an interrupted pull left behind: the state records the
//! offset a pull started appending at (`pending_from`) together with the file's
//! identity (device + inode), and the next pull cuts the file back to that
//! offset before it writes, so a crash never causes duplicates. A file replaced
//! (logrotate `create`) or shrunk (`copytruncate`) since is a fresh file.
//! A file is appended to through an [`Appender`], which writes a backfill
//! around the page cache once it is large (see `direct`); until then, a
//! writeback thread asks the kernel to write dirty pages as they are made.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, IoSlice, Stdout, Write};
use std::path::{Path, PathBuf};

use super::direct::Appender;
use crate::exit::Exit;
use crate::state::OutputMark;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot write the output {target}: {source}")]
    Write {
        target: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot open the output file {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl SinkError {
    pub fn exit(&self) -> Exit {
        match self {
            SinkError::Write { .. } => Exit::OutputFailed,
            SinkError::Open { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                Exit::Usage
            }
            SinkError::Open { .. } => Exit::OutputFailed,
        }
    }
}

/// What opening a file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// Nothing to undo.
    Clean,
    /// An interrupted pull's lines were cut off: the file went from `from` bytes to `to`.
    Truncated { from: u64, to: u64 },
    /// The file is not the one the state knew (rotated, replaced or shrunk).
    Replaced,
}

const BUFFER: usize = 1 << 20;

pub enum Sink {
    Stdout(BufWriter<Stdout>),
    File(FileSink),
}

pub struct FileSink {
    path: PathBuf,
    out: BufWriter<Appender>,
    created: bool,
    /// The length that is durable already (at open, then at each commit): a
    /// commit that finds the file still this long, with nothing written
    /// through this sink since, has nothing to sync.
    synced_len: u64,
    written: bool,
    writeback: Option<Writeback>,
}

/// Asks the kernel to start writing a file's dirty pages to disk, on a thread
/// of its own: `sync_file_range` blocks while the disk's queue is full (for
/// a fifth of a second, seen here), and nothing but the commit's fsync should
/// wait for the disk. Requests that pile up meanwhile are served as one.
struct Writeback {
    kick: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writeback {
    #[cfg(target_os = "linux")]
    fn start(file: &File) -> Option<Writeback> {
        use std::os::fd::AsRawFd;
        let file = file.try_clone().ok()?;
        let (kick, requests) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("writeback".into())
            .spawn(move || {
                while requests.recv().is_ok() {
                    while requests.try_recv().is_ok() {}
                    // SAFETY: a plain syscall on a descriptor this thread owns;
                    // 0, 0 is the whole file, and SYNC_FILE_RANGE_WRITE only
                    // queues writeback.
                    unsafe {
                        libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
                    }
                }
            })
            .ok()?;
        Some(Writeback {
            kick: Some(kick),
            thread: Some(thread),
        })
    }

    #[cfg(not(target_os = "linux"))]
    fn start(_: &File) -> Option<Writeback> {
        None
    }

    /// The writeback of `slot`, started for `out`'s file if it was not yet;
    /// none while `out` writes directly (it leaves no dirty pages).
    fn started<'w>(slot: &'w mut Option<Writeback>, out: &Appender) -> Option<&'w Writeback> {
        if out.is_direct() {
            return None;
        }
        if slot.is_none() {
            *slot = Writeback::start(out.file());
        }
        slot.as_ref()
    }

    fn kick(&self) {
        if let Some(k) = &self.kick {
            let _ = k.send(());
        }
    }
}

impl Drop for Writeback {
    fn drop(&mut self) {
        self.kick = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Sink {
    pub fn stdout() -> Sink {
        Sink::Stdout(BufWriter::with_capacity(BUFFER, io::stdout()))
    }

    /// Open `path` for appending, undoing an interrupted pull's output as `mark` says.
    pub fn open_file(
        path: &Path,
        mark: Option<&OutputMark>,
    ) -> Result<(Sink, Recovery), SinkError> {
        let open_err = |source| SinkError::Open {
            path: path.to_path_buf(),
            source,
        };
        let existed = path.exists();
        let mut opts = OpenOptions::new();
        opts.append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o640);
        }
        let file = opts.open(path).map_err(open_err)?;
        let (dev, ino, len) = identity(&file).map_err(open_err)?;
        let mut synced_len = len;
        let recovery = match mark {
            None => Recovery::Clean,
            Some(m) if m.dev != dev || m.ino != ino => Recovery::Replaced,
            Some(m) => match m.pending_from {
                Some(p) if len > p => {
                    file.set_len(p).map_err(open_err)?;
                    file.sync_all().map_err(open_err)?;
                    synced_len = p;
                    Recovery::Truncated { from: len, to: p }
                }
                Some(p) if len < p => Recovery::Replaced,
                _ if len < m.committed_len => Recovery::Replaced,
                _ => Recovery::Clean,
            },
        };
        Ok((
            Sink::File(FileSink {
                path: path.to_path_buf(),
                out: BufWriter::with_capacity(BUFFER, Appender::new(file)),
                created: !existed,
                synced_len,
                written: false,
                writeback: None,
            }),
            recovery,
        ))
    }

    /// Where the output goes, for messages.
    pub fn target(&self) -> String {
        match self {
            Sink::Stdout(_) => "stdout".to_string(),
            Sink::File(f) => f.path.display().to_string(),
        }
    }

    /// The file's identity and current length (files only), to record as the
    /// start of a pull before anything is written.
    pub fn mark(&mut self) -> Result<Option<OutputMark>, SinkError> {
        let target = self.target();
        match self {
            Sink::Stdout(_) => Ok(None),
            Sink::File(f) => {
                let (dev, ino, len) = identity(f.out.get_ref().file())
                    .map_err(|source| SinkError::Write { target, source })?;
                Ok(Some(OutputMark {
                    dev,
                    ino,
                    committed_len: len,
                    pending_from: Some(len),
                }))
            }
        }
    }

    /// Write one output line per record, all under the same envelope. Records
    /// already on one line go out with `writev` straight from the page, without
    /// being copied into the buffer first.
    pub fn write_records<'r>(
        &mut self,
        line: &Envelope<'_>,
        records: impl IntoIterator<Item = &'r str>,
    ) -> Result<(), SinkError> {
        let result = match self {
            Sink::Stdout(w) => line.write_many(w, records, || {}),
            Sink::File(f) => {
                f.written = true;
                // Queue writeback after each `writev` (a megabyte or so), not
                // once per page: the disk then works while the rest is written.
                let writeback = Writeback::started(&mut f.writeback, f.out.get_ref());
                line.write_many(&mut f.out, records, || {
                    if let Some(w) = writeback {
                        w.kick();
                    }
                })
            }
        };
        result.map_err(|source| SinkError::Write {
            target: self.target(),
            source,
        })
    }

    /// Start writing what was written so far to disk, without waiting for it,
    /// so the [`commit`](Sink::commit) at the end has little left to wait for
    /// (a backfill writes hundreds of megabytes). Durability still comes only
    /// from the commit. Best effort: a failure here shows at the commit.
    /// Writing directly, there is nothing to start: whole blocks go out
    /// as the buffer fills (see `Writeback::started`).
    pub fn start_writeback(&mut self) {
        if let Sink::File(f) = self {
            if f.out.flush().is_err() {
                return;
            }
            if let Some(w) = Writeback::started(&mut f.writeback, f.out.get_ref()) {
                w.kick();
            }
        }
    }

    /// Make everything written so far durable. For files, returns the mark to
    /// record in the state (identity and length, nothing pending). A file
    /// that was not created and did not grow since it was opened (a pull that
    /// wrote nothing) is not synced again.
    pub fn commit(&mut self) -> Result<Option<OutputMark>, SinkError> {
        let target = self.target();
        let err = |source| SinkError::Write {
            target: target.clone(),
            source,
        };
        match self {
            Sink::Stdout(w) => {
                w.flush().map_err(err)?;
                Ok(None)
            }
            Sink::File(f) => {
                f.out.flush().map_err(err)?;
                f.out.get_mut().settle().map_err(err)?;
                // Its last request is done before the fsync that makes it moot.
                f.writeback = None;
                let file = f.out.get_ref().file();
                let (dev, ino, len) = identity(file).map_err(err)?;
                if f.created || f.written || len != f.synced_len {
                    file.sync_data().map_err(err)?;
                    (f.synced_len, f.written) = (len, false);
                }
                if f.created {
                    if let Some(dir) = f.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                        crate::state::sync_dir(dir).map_err(err)?;
                    }
                    f.created = false;
                }
                Ok(Some(OutputMark {
                    dev,
                    ino,
                    committed_len: len,
                    pending_from: None,
                }))
            }
        }
    }
}

#[cfg(unix)]
fn identity(file: &File) -> io::Result<(u64, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = file.metadata()?;
    Ok((m.dev(), m.ino(), m.len()))
}

#[cfg(not(unix))]
fn identity(file: &File) -> io::Result<(u64, u64, u64)> {
    let m = file.metadata()?;
    Ok((0, 0, m.len()))
}

/// The fixed part of an output line: `{"kind":…,"tenant_id":…,"fetched_at":…,"data":`.
pub struct Envelope<'a> {
    prefix: &'a str,
}

impl<'a> Envelope<'a> {
    /// Build the prefix once per page.
    pub fn prefix(kind: &str, tenant_id: &str, fetched_at: &str) -> String {
        format!(
            "{{\"kind\":{},\"tenant_id\":{},\"fetched_at\":{},\"data\":",
            serde_json::Value::from(kind),
            serde_json::Value::from(tenant_id),
            serde_json::Value::from(fetched_at)
        )
    }

    pub fn new(prefix: &'a str) -> Envelope<'a> {
        Envelope { prefix }
    }

    fn write<W: Write>(&self, w: &mut W, data: &str) -> io::Result<()> {
        w.write_all(self.prefix.as_bytes())?;
        let raw = data.as_bytes();
        if memchr::memchr2(b'\n', b'\r', raw).is_some() {
            write_compact(w, raw)?;
        } else {
            w.write_all(raw)?;
        }
        w.write_all(b"}\n")
    }

    /// Write one line per record, a `writev` at a time, calling `written`
    /// after each full one.
    fn write_many<'r, W: Write>(
        &self,
        w: &mut BufWriter<W>,
        records: impl IntoIterator<Item = &'r str>,
        mut written: impl FnMut(),
    ) -> io::Result<()> {
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(SLICES);
        for data in records {
            let raw = data.as_bytes();
            if memchr::memchr2(b'\n', b'\r', raw).is_some() {
                write_slices(w, &mut slices)?;
                self.write(w, data)?;
                continue;
            }
            slices.extend([
                IoSlice::new(self.prefix.as_bytes()),
                IoSlice::new(raw),
                IoSlice::new(b"}\n"),
            ]);
            if slices.len() + 3 > SLICES {
                write_slices(w, &mut slices)?;
                written();
            }
        }
        write_slices(w, &mut slices)
    }
}

/// Slices per `writev` (Linux takes at most 1,024).
const SLICES: usize = 1023;

/// Write `slices` after what is buffered in `w`, and empty it.
fn write_slices<W: Write>(w: &mut BufWriter<W>, slices: &mut Vec<IoSlice<'_>>) -> io::Result<()> {
    if slices.is_empty() {
        return Ok(());
    }
    if !w.buffer().is_empty() {
        w.flush()?;
    }
    let out = w.get_mut();
    let mut rest: &mut [IoSlice<'_>] = slices;
    while !rest.is_empty() {
        match out.write_vectored(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    slices.clear();
    Ok(())
}

/// Write JSON without the whitespace between tokens (a pretty-printed record
/// must still be one line); strings, key order and numbers stay as they were.
fn write_compact<W: Write>(w: &mut W, raw: &[u8]) -> io::Result<()> {
    let mut out = Vec::with_capacity(raw.len());
    let (mut in_string, mut escaped) = (false, false);
    for &b in raw {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
            out.push(b);
        } else if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
            out.push(b);
        }
    }
    w.write_all(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(data: &str) -> String {
        let prefix = Envelope::prefix("alert", "contoso", "2026-12-03T15:00:00Z");
        let mut buf = Vec::new();
        Envelope::new(&prefix).write(&mut buf, data).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn envelope_wraps_the_record_verbatim() {
        let l = line(r#"{"id":"da1","z":1,"a":"x y"}"#);
        assert_eq!(
            l,
            "{\"kind\":\"alert\",\"tenant_id\":\"contoso\",\"fetched_at\":\"2026-12-03T15:00:00Z\",\"data\":{\"id\":\"da1\",\"z\":1,\"a\":\"x y\"}}\n"
        );
    }

    #[test]
    fn pretty_records_become_one_line_with_strings_intact() {
        let l = line("{\n  \"id\": \"da1\",\n  \"t\": \"a \\\" b\\n c\",\n  \"n\": [1, 2]\n}");
        assert_eq!(l.matches('\n').count(), 1);
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["data"]["t"], "a \" b\n c");
        assert!(
            l.contains(r#"{"id":"da1","t":"a \" b\n c","n":[1,2]}"#),
            "{l}"
        );
    }

    #[test]
    fn many_records_keep_their_order_across_writev_batches_and_compacted_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let (mut sink, _) = Sink::open_file(&path, None).unwrap();
        let records: Vec<String> = (0..1500)
            .map(|i| match i % 500 {
                // Now and then a pretty-printed record, which goes through the buffer.
                7 => format!("{{\n  \"n\": {i}\r\n}}"),
                _ => format!(r#"{{"n":{i}}}"#),
            })
            .collect();
        let prefix = Envelope::prefix("alert", "t", "x");
        sink.write_records(&Envelope::new(&prefix), records.iter().map(String::as_str))
            .unwrap();
        sink.commit().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1500);
        for (i, l) in lines.iter().enumerate() {
            assert_eq!(*l, format!(r#"{prefix}{{"n":{i}}}}}"#), "line {i}");
        }
    }

    #[test]
    fn a_commit_with_nothing_written_still_marks_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        std::fs::write(&path, "committed\n").unwrap();
        let (mut sink, _) = Sink::open_file(&path, None).unwrap();
        let quiet = sink.commit().unwrap().unwrap();
        assert_eq!((quiet.committed_len, quiet.pending_from), (10, None));
        // Another writer appended meanwhile: its bytes are accounted for too.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"theirs\n")
            .unwrap();
        let prefix = Envelope::prefix("alert", "t", "x");
        sink.write_records(&Envelope::new(&prefix), ["{}"]).unwrap();
        let done = sink.commit().unwrap().unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        assert_eq!((done.committed_len, done.pending_from), (len, None));
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .starts_with("committed\ntheirs\n{")
        );
        // A file this pull created is committed (and made durable) even empty.
        let fresh = dir.path().join("new.jsonl");
        let (mut sink, _) = Sink::open_file(&fresh, None).unwrap();
        assert_eq!(sink.commit().unwrap().unwrap().committed_len, 0);
        assert!(fresh.exists());
    }

    #[test]
    fn interrupted_output_is_cut_back_and_rotation_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        std::fs::write(&path, "committed\n").unwrap();
        let (mut sink, rec) = Sink::open_file(&path, None).unwrap();
        assert_eq!(rec, Recovery::Clean);
        let start = sink.mark().unwrap().unwrap();
        assert_eq!(start.pending_from, Some(10));
        let prefix = Envelope::prefix("alert", "t", "x");
        sink.write_records(&Envelope::new(&prefix), ["{}"]).unwrap();
        let done = sink.commit().unwrap().unwrap();
        assert!(done.committed_len > 10 && done.pending_from.is_none());
        drop(sink);
        // A pull that crashed after writing: the next open cuts its lines off.
        std::fs::write(&path, "committed\npartial line from a crash").unwrap();
        let (_, rec) = Sink::open_file(&path, Some(&start)).unwrap();
        assert_eq!(rec, Recovery::Truncated { from: 35, to: 10 });
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "committed\n");
        // A committed mark with nothing pending never cuts (another writer may have appended).
        std::fs::write(&path, "committed\nsomeone else's line\n").unwrap();
        let clean = OutputMark {
            pending_from: None,
            ..start.clone()
        };
        let (_, rec) = Sink::open_file(&path, Some(&clean)).unwrap();
        assert_eq!(rec, Recovery::Clean);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "committed\nsomeone else's line\n"
        );
        // logrotate `create`: a new inode at the same path is a fresh file.
        std::fs::rename(&path, dir.path().join("out.jsonl.1")).unwrap();
        std::fs::write(&path, "").unwrap();
        let (_, rec) = Sink::open_file(&path, Some(&start)).unwrap();
        assert_eq!(rec, Recovery::Replaced);
    }
}
