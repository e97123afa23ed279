//! Appending a backfill to a file without going through the page cache.
//!
//! A backfill writes gigabytes that this process never reads again. Through
//! the page cache the kernel copies each byte into memory of its own and
//! writes it back later: on the benchmark's 2-core VM, `dd` took 4–6 s of
//! system time to put 3.5 GB into the page cache and 0.25 s to write them
//! with `O_DIRECT` — for a 1M-alert pull, the page cache cost as much CPU as
//! everything else the pull does. So once a pull has appended [`AFTER`]
//! bytes to a file, an [`Appender`] gathers what follows in a block-aligned
//! buffer and writes whole blocks with `O_DIRECT`, from the block that holds
//! the file's end on (its first bytes read back and written again, unchanged).
//!
//! The file never holds a byte that was not output, not even for a moment: a
//! partial last block is appended through the page cache as before, and only
//! on [`Appender::settle`] (the commit), so a reader tailing the file sees what
//! it always saw. Small pulls — the usual cron run — never reach [`AFTER`]
//! and write as before. Where the file system refuses `O_DIRECT` (`EINVAL`),
//! the appender goes on through the page cache, losing nothing.

use std::fs::File;
use std::io::{self, IoSlice, Write};

/// Bytes a pull appends through the page cache before it writes directly.
pub const AFTER: u64 = 16 << 20;
/// The alignment of direct writes: file offset, length and memory.
const BLOCK: usize = 4096;
/// The aligned buffer: one direct write when full.
const CAP: usize = 4 << 20;

/// A file opened for appending, that writes directly once a pull wrote
/// [`AFTER`] bytes. `flush` writes what fills whole blocks (the page cache
/// write path: all of it); [`settle`](Appender::settle) writes the rest.
pub struct Appender {
    file: File,
    /// Bytes appended through the page cache so far.
    appended: u64,
    direct: Option<Direct>,
    /// Whether direct writing was tried (it is tried once).
    tried: bool,
}

/// The direct part: `buf[..fill]` goes at file offset `base`; the file holds
/// `buf[..end - base]` already.
struct Direct {
    fd: File,
    buf: Aligned,
    base: u64,
    fill: usize,
    end: u64,
}

/// `CAP` bytes at a `BLOCK`-aligned address, inside a plain `Vec` (zeroed
/// lazily by the allocator's fresh pages, touched only as used).
struct Aligned {
    vec: Vec<u8>,
    at: usize,
}

impl Aligned {
    fn new() -> Aligned {
        let vec = vec![0u8; CAP + BLOCK];
        let at = vec.as_ptr().align_offset(BLOCK);
        Aligned { vec, at }
    }

    fn get(&self) -> &[u8] {
        &self.vec[self.at..self.at + CAP]
    }

    fn get_mut(&mut self) -> &mut [u8] {
        &mut self.vec[self.at..self.at + CAP]
    }
}

impl Appender {
    pub fn new(file: File) -> Appender {
        Appender {
            file,
            appended: 0,
            direct: None,
            tried: false,
        }
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    /// Whether writes go around the page cache now.
    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// Write everything taken so far to the file (a partial last block
    /// through the page cache).
    pub fn settle(&mut self) -> io::Result<()> {
        self.write_whole_blocks()?;
        let Some(d) = &mut self.direct else {
            return Ok(());
        };
        let written = (d.end - d.base) as usize;
        if written < d.fill {
            self.file.write_all(&d.buf.get()[written..d.fill])?;
            d.end = d.base + d.fill as u64;
        }
        Ok(())
    }

    /// Write what fills whole blocks of the buffer (writing directly).
    fn write_whole_blocks(&mut self) -> io::Result<()> {
        let Some(d) = &mut self.direct else {
            return Ok(());
        };
        let whole = d.fill & !(BLOCK - 1);
        if whole > 0 && !d.write_blocks(whole)? {
            self.give_up_direct()?;
        }
        Ok(())
    }

    /// After [`AFTER`] bytes, try to go direct (once).
    fn maybe_go_direct(&mut self) {
        if self.tried || self.appended < AFTER {
            return;
        }
        self.tried = true;
        self.direct = Direct::start(&self.file).ok().flatten();
        if self.direct.is_some() {
            tracing::debug!(
                after = self.appended,
                "appending to the output file with O_DIRECT from here on"
            );
        }
    }

    /// The file system refused a direct write: append what it did not take
    /// through the page cache, and go on that way.
    fn give_up_direct(&mut self) -> io::Result<()> {
        let Some(d) = self.direct.take() else {
            return Ok(());
        };
        tracing::debug!(
            "the output's file system refused O_DIRECT, or the file was cut short; \
             writing through the page cache"
        );
        let written = (d.end - d.base) as usize;
        if written < d.fill {
            self.file.write_all(&d.buf.get()[written..d.fill])?;
        }
        Ok(())
    }

    fn take(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let Some(d) = &mut self.direct else {
                return self.file.write_all(data);
            };
            let n = data.len().min(CAP - d.fill);
            d.buf.get_mut()[d.fill..d.fill + n].copy_from_slice(&data[..n]);
            d.fill += n;
            data = &data[n..];
            if d.fill == CAP && !d.write_blocks(CAP)? {
                self.give_up_direct()?;
            }
        }
        Ok(())
    }
}

impl Direct {
    /// Open the same file for direct writes and read back the start of the
    /// block that holds its end. `None`: no direct writes here.
    #[cfg(target_os = "linux")]
    fn start(file: &File) -> io::Result<Option<Direct>> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::{FileExt, OpenOptionsExt};
        let meta = file.metadata()?;
        if !meta.file_type().is_file() {
            // A named pipe or a device (`--output /dev/stdout`): no offsets.
            return Ok(None);
        }
        let end = meta.len();
        // Its own open file description (a `dup` would share O_APPEND), of
        // the very file (not of whatever the path names now).
        let fd = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(format!("/proc/self/fd/{}", file.as_raw_fd()))
        {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut buf = Aligned::new();
        let base = end & !(BLOCK as u64 - 1);
        let fill = (end - base) as usize;
        if fill > 0 {
            match fd.read_at(&mut buf.get_mut()[..BLOCK], base) {
                Ok(n) if n == fill => {}
                Ok(_) => return Ok(None),
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Ok(Some(Direct {
            fd,
            buf,
            base,
            fill,
            end,
        }))
    }

    #[cfg(not(target_os = "linux"))]
    fn start(_: &File) -> io::Result<Option<Direct>> {
        Ok(None)
    }

    /// Write `buf[..n]` (whole blocks) at `base` and keep the rest at the
    /// buffer's start. `false`: the file system refused, or the file was cut
    /// short meanwhile; nothing moved.
    #[cfg(unix)]
    fn write_blocks(&mut self, n: usize) -> io::Result<bool> {
        use std::os::unix::fs::FileExt;
        debug_assert_eq!(n % BLOCK, 0);
        if self.fd.metadata()?.len() < self.end {
            // Truncated under us (logrotate `copytruncate`): writing at our
            // offsets would leave a hole of NULs before the rest. Appending
            // puts it where a plain appender would.
            return Ok(false);
        }
        let mut done = 0;
        while done < n {
            match self
                .fd
                .write_at(&self.buf.get()[done..n], self.base + done as u64)
            {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                // A short direct write ends on a block (or the disk is full,
                // which the next write reports).
                Ok(k) if k % BLOCK == 0 => done += k,
                Ok(k) => {
                    self.record_written(done + k);
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) && done == 0 => return Ok(false),
                Err(e) => {
                    self.record_written(done);
                    return Err(e);
                }
            }
        }
        self.record_written(n);
        self.shift(n);
        Ok(true)
    }

    #[cfg(not(unix))]
    fn write_blocks(&mut self, _: usize) -> io::Result<bool> {
        Ok(false)
    }

    fn record_written(&mut self, n: usize) {
        self.end = self.end.max(self.base + n as u64);
    }

    /// Drop the buffer's first `n` bytes (written), moving the rest to its start.
    fn shift(&mut self, n: usize) {
        self.buf.get_mut().copy_within(n..self.fill, 0);
        self.fill -= n;
        self.base += n as u64;
    }
}

impl Write for Appender {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.direct.is_some() {
            self.take(data)?;
            return Ok(data.len());
        }
        let n = self.file.write(data)?;
        self.appended += n as u64;
        self.maybe_go_direct();
        Ok(n)
    }

    fn write_vectored(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        if self.direct.is_some() {
            let mut n = 0;
            for s in slices {
                self.take(s)?;
                n += s.len();
            }
            return Ok(n);
        }
        let n = self.file.write_vectored(slices)?;
        self.appended += n as u64;
        self.maybe_go_direct();
        Ok(n)
    }

    /// Writes whole blocks; a partial last one waits for [`Appender::settle`].
    fn flush(&mut self) -> io::Result<()> {
        self.write_whole_blocks()
    }
}

impl Drop for Appender {
    fn drop(&mut self) {
        // As `BufWriter` does: what was taken goes out, best effort (a pull
        // that did not commit has it cut off again by the next).
        let _ = self.settle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;
    use std::path::Path;

    fn append_to(path: &Path) -> File {
        OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .unwrap()
    }

    /// Whether this file system takes O_DIRECT at all (tmpfs before Linux
    /// 6.6 does not), so the test knows which path it exercises.
    #[cfg(target_os = "linux")]
    fn takes_direct(path: &Path) -> bool {
        use std::os::unix::fs::OpenOptionsExt;
        OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .is_ok()
    }

    #[cfg(not(target_os = "linux"))]
    fn takes_direct(_: &Path) -> bool {
        false
    }

    #[test]
    fn a_backfill_appended_directly_is_the_file_byte_for_byte_and_never_shows_more() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        // An earlier pull's lines: the file ends inside a block.
        let mut expected = b"{\"kind\":\"alert\",\"data\":{}}\n".repeat(7);
        std::fs::write(&path, &expected).unwrap();
        let mut out = Appender::new(append_to(&path));
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |below: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % below
        };
        let mut direct_seen = false;
        let target = AFTER as usize + 3 * CAP + 12_345;
        let mut round = 0;
        while expected.len() < target {
            round += 1;
            let n = 1 + next(400_000) as usize;
            let chunk: Vec<u8> = (0..n)
                .map(|i| b'a' + ((expected.len() + i) % 26) as u8)
                .collect();
            let (a, b) = chunk.split_at(n / 3);
            if next(2) == 0 {
                let written = out
                    .write_vectored(&[IoSlice::new(a), IoSlice::new(b)])
                    .unwrap();
                // Through the page cache a writev may be short; the rest follows.
                out.write_all(&chunk[written..]).unwrap();
            } else {
                out.write_all(&chunk).unwrap();
            }
            expected.extend_from_slice(&chunk);
            if next(4) == 0 {
                out.flush().unwrap();
            }
            if next(5) == 0 {
                out.settle().unwrap();
                assert_eq!(std::fs::read(&path).unwrap(), expected, "round {round}");
            }
            // A reader never sees a byte that was not output: not padding,
            // not a block written ahead of its time.
            let len = std::fs::metadata(&path).unwrap().len() as usize;
            assert!(
                len <= expected.len(),
                "round {round}: {len} > {}",
                expected.len()
            );
            direct_seen |= out.is_direct();
        }
        out.settle().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expected);
        assert_eq!(
            direct_seen,
            takes_direct(&path),
            "direct exactly where the file system takes it"
        );
        // Dropped without a settle: what it took still reaches the file.
        out.write_all(b"the last line\n").unwrap();
        drop(out);
        expected.extend_from_slice(b"the last line\n");
        assert_eq!(std::fs::read(&path).unwrap(), expected);
    }

    #[test]
    fn a_file_cut_short_while_written_directly_is_appended_to_without_a_hole() {
        // logrotate's `copytruncate` empties the file mid-backfill: the rest
        // goes to its new end, as with a plain appender, not after a hole.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let mut out = Appender::new(append_to(&path));
        let chunk: Vec<u8> = (0..(1 << 20) + 333)
            .map(|i| b'a' + (i % 26) as u8)
            .collect();
        while !out.is_direct() {
            if out.appended > 2 * AFTER {
                eprintln!("skipped: this file system takes no O_DIRECT");
                return;
            }
            out.write_all(&chunk).unwrap();
        }
        for _ in 0..6 {
            out.write_all(&chunk).unwrap();
        }
        out.flush().unwrap();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
        let mut after = Vec::new();
        for _ in 0..6 {
            out.write_all(&chunk).unwrap();
            after.extend_from_slice(&chunk);
        }
        out.settle().unwrap();
        let file = std::fs::read(&path).unwrap();
        assert!(!file.contains(&0), "no hole of NULs");
        assert!(file.ends_with(&after), "everything after the cut is there");
        assert!(
            file.len() < after.len() + CAP,
            "only what was not yet written at the cut comes before it"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_named_pipe_is_written_through_as_before() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fifo");
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo(3) with a NUL-terminated path that lives through the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let reader = {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut all = Vec::new();
                File::open(path).unwrap().read_to_end(&mut all).unwrap();
                all
            })
        };
        let mut out = Appender::new(append_to(&path));
        let chunk = vec![b'y'; 1 << 20];
        for _ in 0..(AFTER as usize / chunk.len() + 4) {
            out.write_all(&chunk).unwrap();
        }
        out.flush().unwrap();
        out.settle().unwrap();
        assert!(!out.is_direct());
        drop(out);
        let all = reader.join().unwrap();
        assert_eq!(all.len(), (AFTER as usize / chunk.len() + 4) * chunk.len());
    }

    #[cfg(unix)]
    #[test]
    fn a_device_is_written_through_as_before() {
        let mut out = Appender::new(append_to(Path::new("/dev/null")));
        let chunk = vec![b'z'; 1 << 20];
        for _ in 0..(AFTER as usize / chunk.len() + 4) {
            out.write_all(&chunk).unwrap();
        }
        out.settle().unwrap();
        assert!(!out.is_direct());
    }

    #[test]
    fn a_small_pull_never_goes_direct() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let mut out = Appender::new(append_to(&path));
        let line = vec![b'x'; 1023];
        for _ in 0..(AFTER as usize / 1024 - 1) {
            out.write_all(&line).unwrap();
            out.write_all(b"\n").unwrap();
        }
        out.flush().unwrap();
        assert!(!out.is_direct());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), AFTER - 1024);
    }
}
