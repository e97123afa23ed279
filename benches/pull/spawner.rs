//! Running the measured children and reading what `wait4` says of them,
//! from a small process of its own (see [`Spawner`]).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

/// What `wait4` said about one child.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub wall: f64,
    pub cpu: f64,
    pub max_rss_kib: u64,
    pub ok: bool,
}

fn run(cmd: &mut Command) -> Usage {
    let started = Instant::now();
    let child = cmd.spawn().expect("spawn");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid out-parameter; `pid` is our child, not yet reaped.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(rc, pid, "wait4");
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    std::mem::forget(child);
    Usage {
        wall,
        cpu: secs(ru.ru_utime) + secs(ru.ru_stime),
        max_rss_kib: ru.ru_maxrss as u64,
        ok: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
    }
}

/// One measured child: what to run, with exactly this environment, stdin and
/// stdout on /dev/null.
#[derive(Debug, Clone, Default)]
pub struct Job {
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Job {
    pub fn new(program: impl Into<String>) -> Job {
        Job {
            program: program.into(),
            args: Vec::new(),
            env: vec![("PATH".into(), std::env::var("PATH").unwrap_or_default())],
        }
    }

    /// With this process's whole environment (for curl and Python).
    pub fn inheriting(program: impl Into<String>) -> Job {
        Job {
            env: std::env::vars().collect(),
            ..Job::new(program)
        }
    }

    pub fn arg(mut self, a: impl AsRef<std::ffi::OsStr>) -> Job {
        self.args.push(a.as_ref().to_string_lossy().into_owned());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<std::ffi::OsStr>>(self, args: I) -> Job {
        args.into_iter().fold(self, Job::arg)
    }

    pub fn env(mut self, k: &str, v: impl AsRef<std::ffi::OsStr>) -> Job {
        self.env
            .push((k.into(), v.as_ref().to_string_lossy().into_owned()));
        self
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "program": self.program, "args": self.args, "env": self.env })
    }

    fn from_json(v: &serde_json::Value) -> Job {
        let strings = |v: &serde_json::Value| -> Vec<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect()
        };
        Job {
            program: v["program"].as_str().unwrap().into(),
            args: strings(&v["args"]),
            env: v["env"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    let p = strings(p);
                    (p[0].clone(), p[1].clone())
                })
                .collect(),
        }
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args)
            .env_clear()
            .envs(self.env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        c
    }
}

/// Runs the measured children from a small process started before the
/// sandbox holds any data.
///
/// A child's `ru_maxrss` is at least what its parent's memory was when it was
/// forked (Linux carries the old address space's high-water mark across
/// `execve`, for `fork` and `vfork` alike), so a child spawned straight from
/// this process, whose sandbox holds a million alerts, would report the
/// sandbox's memory as its own. The spawner is a copy of this benchmark made
/// at its start, a few MiB, so what it reports is the child's.
pub struct Spawner {
    child: std::process::Child,
    replies: std::io::BufReader<std::process::ChildStdout>,
}

pub const SPAWNER_ENV: &str = "DEFENDER_INGEST_BENCH_SPAWNER";

impl Spawner {
    pub fn start() -> Spawner {
        let mut child = Command::new(std::env::current_exe().expect("the benchmark's path"))
            .env(SPAWNER_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the spawner");
        let replies = std::io::BufReader::new(child.stdout.take().unwrap());
        Spawner { child, replies }
    }

    pub fn run(&mut self, job: &Job) -> Usage {
        use std::io::BufRead;
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{}", job.to_json()).unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        self.replies
            .read_line(&mut line)
            .expect("the spawner's reply");
        let v: serde_json::Value = serde_json::from_str(&line).expect("a reply");
        Usage {
            wall: v["wall"].as_f64().unwrap(),
            cpu: v["cpu"].as_f64().unwrap(),
            max_rss_kib: v["max_rss_kib"].as_u64().unwrap(),
            ok: v["ok"].as_bool().unwrap(),
        }
    }

    /// The spawner's side: one job per line in, one usage per line out.
    pub fn serve() {
        use std::io::BufRead;
        let mut out = std::io::stdout().lock();
        for line in std::io::stdin().lock().lines() {
            let job = Job::from_json(&serde_json::from_str(&line.unwrap()).unwrap());
            let u = run(&mut job.command());
            let reply = serde_json::json!({
                "wall": u.wall, "cpu": u.cpu, "max_rss_kib": u.max_rss_kib, "ok": u.ok,
            });
            writeln!(out, "{reply}").unwrap();
            out.flush().unwrap();
        }
    }
}
