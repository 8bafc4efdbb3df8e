//! A hostile guest, without a guest: calls every function edgepoll-host
//! provides, in-process, with random arguments over a guest memory it keeps
//! scribbling on (path-shaped strings, live descriptor numbers, iovec and
//! subscription tables, random bytes), for a set time. It fails, with the
//! seed and the call, when:
//!
//! - a host function panics (or a call stalls for 10 s: the watchdog);
//! - anything outside the canary directory the guest was given changed
//!   (the canary holds links that lead out, as an attacker would plant);
//! - a host descriptor is left open once the guest's state is dropped;
//! - the read-only preopen changed;
//! - a call ended the guest other than as `proc_exit` or a host function's
//!   failure does;
//! - a run of over 100 000 calls in which `path_open`, `fd_read`,
//!   `fd_write`, `fd_readdir` or `poll_oneoff` never succeeded (it reached
//!   too little to have tested much), or a run of 10 s or more that made
//!   fewer calls (too few to tell).
//!
//! What the fuzzer keeps out of the guest's reach, and why: functions that
//! could reach another machine (`sock_connect*`, `sock_send_to*`,
//! `sock_getaddrinfo`: tests talk to loopback only), and any address but
//! loopback for a bind, a listen or a send (which bind a socket bound to
//! nothing to every address, where other machines could reach it);
//! sockets are switched to
//! non-blocking before each call, poll subscriptions end with a realtime or
//! monotonic clock of at most 1 ms (a guest that waits on nothing valid
//! waits for ever, on WasmEdge as here), and `fd_allocate` at most 1 MiB, so that no call can
//! wait for ever or fill the disk. Everything else gets what a guest could
//! pass.
//!
//! `cargo run --release -p edgepoll-fuzz --bin host_imports -- [--seconds N] [--seed N]`

#[cfg(target_os = "linux")]
fn main() {
    linux::main()
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("host_imports fuzzes edgepoll-host, which runs on Linux only");
    std::process::exit(2);
}

#[cfg(target_os = "linux")]
mod linux {
    use edgepoll_fuzz::Rng;
    use edgepoll_host::fd_table::Entry;
    use edgepoll_host::host::Host;
    use edgepoll_host::linker::{define, PROVIDED};
    use edgepoll_host::runtime::{host_state, Directories, Invocation, Preopen};
    use std::fs::File;
    use std::io::Write;
    use std::os::fd::FromRawFd;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::path::{Path, PathBuf};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};
    use wasmtime::{Engine, Func, Linker, Memory, MemoryType, Store, Val, ValType};

    const MODULE: &str = "wasi_snapshot_preview1";
    /// Functions that could reach past this machine.
    const OFF_LIMITS: [&str; 5] = [
        "sock_connect",
        "sock_connect_v2",
        "sock_send_to",
        "sock_send_to_v2",
        "sock_getaddrinfo",
    ];
    /// One page of guest memory: random pointers land inside it often.
    const MEMORY: usize = 64 * 1024;
    /// Calls between fresh guest states.
    const ROUND: u64 = 1000;
    /// What a guest might write as a path.
    const PATHS: [&[u8]; 22] = [
        b"file.txt",
        b"sub",
        b"sub/inner.txt",
        b"new.txt",
        b"newdir",
        b"out_abs",
        b"out_rel",
        b"outdir/secret.txt",
        b"outdir/planted",
        b"dangling_out",
        b"up/outside/secret.txt",
        b"loop",
        b"../outside/secret.txt",
        // Absolute: resolved beneath the preopen, or refused; never the
        // host's own file of that name (see also `Fuzzer::outside`).
        b"/outside/secret.txt",
        b"sub/../..",
        b".",
        b"..",
        b"./",
        b"sub/",
        b"a\0b",
        b"",
        b"sub/up/out_rel",
    ];

    /// The scratch tree: `canary/` is what the guest gets (preopened as
    /// `/canary`), `readonly/` too (as `/ro`, read-only); `outside/` must
    /// never change. `outside/` is laid out once, the others anew for each
    /// guest state.
    fn lay_out_outside(root: &Path) -> std::io::Result<()> {
        let _ = std::fs::remove_dir_all(root);
        std::fs::create_dir_all(root.join("outside"))?;
        std::fs::write(root.join("outside/secret.txt"), "secret")
    }

    fn lay_out_canary(root: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::symlink;
        for dir in ["canary", "readonly"] {
            let _ = std::fs::remove_dir_all(root.join(dir));
            std::fs::create_dir_all(root.join(dir).join("sub"))?;
            std::fs::write(root.join(dir).join("file.txt"), "file")?;
            std::fs::write(root.join(dir).join("sub/inner.txt"), "inner")?;
            let secret = root.join("outside/secret.txt");
            for (name, target) in [
                ("out_abs", secret.to_string_lossy().into_owned()),
                ("out_rel", "../outside/secret.txt".into()),
                ("outdir", "../outside".into()),
                ("up", "..".into()),
                ("sub/up", "..".into()),
                ("loop", "loop".into()),
                ("dangling_out", "../outside/created".into()),
            ] {
                symlink(target, root.join(dir).join(name))?;
            }
        }
        Ok(())
    }

    /// What must not change: the names in the root (the canary's content
    /// is the guest's to change), and everything in `outside/` with its
    /// content and modification time.
    fn snapshot(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut listed = |dir: &Path, deep: bool| {
            let Ok(entries) = std::fs::read_dir(dir) else {
                out.push(format!("{}: unreadable", dir.display()));
                return;
            };
            let mut paths: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
            paths.sort();
            for path in paths {
                if deep {
                    let meta = std::fs::symlink_metadata(&path).ok();
                    let modified = meta.and_then(|m| m.modified().ok());
                    let content = std::fs::read(&path).unwrap_or_default();
                    out.push(format!("{path:?} {modified:?} {content:?}"));
                } else {
                    out.push(format!("{path:?}"));
                }
            }
        };
        listed(root, false);
        listed(&root.join("outside"), true);
        out
    }

    /// Every entry below `dir`, with its kind, content (a file's) or target
    /// (a link's) and modification time, in order.
    fn tree(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut dirs = vec![dir.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                out.push(format!("{}: unreadable", dir.display()));
                continue;
            };
            let mut paths: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
            paths.sort();
            for path in paths {
                let Ok(meta) = std::fs::symlink_metadata(&path) else {
                    continue;
                };
                let modified = meta.modified().ok();
                let what = if meta.is_symlink() {
                    format!("-> {:?}", std::fs::read_link(&path).ok())
                } else if meta.is_dir() {
                    dirs.push(path.clone());
                    "dir".to_string()
                } else {
                    format!("{:?}", std::fs::read(&path).unwrap_or_default())
                };
                out.push(format!("{path:?} {modified:?} {what}"));
            }
        }
        out
    }

    fn open_fds() -> usize {
        std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
    }

    struct Fuzzer {
        rng: Rng,
        store: Store<Host>,
        memory: Memory,
        funcs: Vec<(&'static str, Func)>,
        /// The host's absolute path of `outside/secret.txt`: a guest that
        /// could open it escaped, and the snapshot sees any change to it.
        outside: Vec<u8>,
        /// The read-only preopen as it was laid out: it must stay so.
        readonly: Vec<String>,
    }

    impl Fuzzer {
        /// A path a guest might try: one of [`PATHS`], or now and then the
        /// host's own path of the secret outside.
        fn path(&mut self) -> Vec<u8> {
            match self.rng.below(PATHS.len() + 1) {
                0 => self.outside.clone(),
                i => PATHS[i - 1].to_vec(),
            }
        }

        /// Descriptor numbers the guest could know: live ones, mostly.
        fn fd(&mut self) -> u32 {
            let live: Vec<u32> = self.store.data().fds.iter().map(|(fd, _)| fd).collect();
            match self.rng.below(8) {
                0 => self.rng.next_u64() as u32,
                // The guest may have closed every descriptor, stdio included.
                _ if live.is_empty() => self.rng.below(8) as u32,
                1 => self.rng.below(8) as u32,
                _ => live[self.rng.below(live.len())],
            }
        }

        /// A pointer: mostly inside memory, sometimes at its very end or far
        /// past it.
        fn pointer(&mut self) -> u32 {
            match self.rng.below(10) {
                0 => self.rng.next_u64() as u32,
                1 => (MEMORY - self.rng.below(16)) as u32,
                _ => self.rng.below(MEMORY) as u32,
            }
        }

        fn int(&mut self) -> u32 {
            match self.rng.below(6) {
                0 => self.fd(),
                1 => self.pointer(),
                2 => self.rng.next_u64() as u32,
                3 => u32::MAX - self.rng.below(4) as u32,
                _ => self.rng.below(64) as u32,
            }
        }

        fn wide(&mut self) -> u64 {
            match self.rng.below(4) {
                0 => self.rng.next_u64(),
                1 => u64::MAX - self.rng.below(4) as u64,
                _ => self.rng.below(1 << 20) as u64,
            }
        }

        fn put(&mut self, at: usize, bytes: &[u8]) {
            let data = self.memory.data_mut(&mut self.store);
            let end = (at + bytes.len()).min(data.len());
            data[at..end].copy_from_slice(&bytes[..end - at]);
        }

        /// Scribbles on guest memory as a guest would before a call.
        fn scribble(&mut self) {
            for _ in 0..1 + self.rng.below(8) {
                let at = self.rng.below(MEMORY);
                match self.rng.below(5) {
                    0 => {
                        let path = self.path();
                        self.put(at, &path);
                    }
                    1 => {
                        let fd = self.fd();
                        self.put(at & !3, &fd.to_le_bytes());
                    }
                    2 => {
                        // An iovec: a pointer and a length.
                        let (buf, len) = (self.pointer(), self.rng.below(4096) as u32);
                        self.put(at & !7, &buf.to_le_bytes());
                        self.put((at & !7) + 4, &len.to_le_bytes());
                    }
                    3 => {
                        let small = self.rng.below(256) as u32;
                        self.put(at & !3, &small.to_le_bytes());
                    }
                    _ => {
                        let bytes: Vec<u8> = (0..self.rng.below(64))
                            .map(|_| self.rng.next_u64() as u8)
                            .collect();
                        self.put(at, &bytes);
                    }
                }
            }
        }

        /// Subscriptions that cannot wait for ever: random ones, then a
        /// relative clock of at most 1 ms.
        fn subscriptions(&mut self, args: &mut [Val]) {
            const SUB: usize = edgepoll_host::poll::abi::SUBSCRIPTION_SIZE;
            let at = self.rng.below(MEMORY - SUB * 8) & !7;
            let count = 1 + self.rng.below(8);
            for i in 0..count {
                let base = at + SUB * i;
                let mut sub = [0u8; SUB];
                sub[..8].copy_from_slice(&self.rng.next_u64().to_le_bytes());
                let tag = if i + 1 == count {
                    0
                } else {
                    self.rng.below(4) as u8
                };
                sub[8] = tag;
                if tag == 0 {
                    // The last one must be a clock that can fire (realtime or
                    // monotonic): like WasmEdge, the host waits for ever when
                    // no subscription could be registered.
                    let clocks = if i + 1 == count { 2 } else { 5 };
                    let clock = self.rng.below(clocks) as u32;
                    sub[16..20].copy_from_slice(&clock.to_le_bytes());
                    let timeout = self.rng.below(1_000_000) as u64;
                    sub[24..32].copy_from_slice(&timeout.to_le_bytes());
                } else {
                    let fd = self.fd();
                    sub[16..20].copy_from_slice(&fd.to_le_bytes());
                }
                self.put(base, &sub);
            }
            args[0] = Val::I32(at as i32);
            args[2] = Val::I32(count as i32);
        }

        /// Non-blocking sockets: a call on one can fail, never wait.
        fn unblock_sockets(&self) {
            for (_, d) in self.store.data().fds.iter() {
                if let Entry::Socket(_) = d.entry {
                    let fd = d.host_fd();
                    // SAFETY: plain fcntl on a descriptor the table holds.
                    unsafe {
                        let flags = libc::fcntl(fd, libc::F_GETFL);
                        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
                    }
                }
            }
        }

        /// A fresh guest state (the guest may have closed its preopens and
        /// stdio, or renumbered them away); the old one is dropped, closing
        /// all it held. The canary is laid out anew, so a long run stays
        /// small and keeps its links that lead out.
        fn renew(&mut self, invocation: &Invocation, root: &Path) -> Result<(), String> {
            self.check_readonly(root)?;
            lay_out_canary(root).map_err(|e| format!("cannot lay out the canary: {e}"))?;
            self.readonly = tree(&root.join("readonly"));
            // Opened again: the canary was laid out anew.
            let mut fresh = host_state(invocation, &Directories::open(invocation)?)?;
            fresh.memory = Some(self.memory);
            *self.store.data_mut() = fresh;
            Ok(())
        }

        /// The read-only preopen is as it was laid out (before it is laid
        /// out anew).
        fn check_readonly(&self, root: &Path) -> Result<(), String> {
            let now = tree(&root.join("readonly"));
            match self.readonly.is_empty() || now == self.readonly {
                true => Ok(()),
                false => Err(format!(
                    "the read-only preopen changed: {:?} became {now:?}",
                    self.readonly
                )),
            }
        }

        fn arguments(&mut self, name: &str, func: &Func) -> Vec<Val> {
            let ty = func.ty(&self.store);
            let mut args: Vec<Val> = ty
                .params()
                .map(|p| match p {
                    ValType::I64 => Val::I64(self.wide() as i64),
                    _ => Val::I32(self.int() as i32),
                })
                .collect();
            // Where the path functions take (directory, path, length): aim
            // them at a preopen and a path a guest would try, half the time.
            let paths: &[(usize, usize)] = match name {
                "path_open" | "path_filestat_get" | "path_filestat_set_times" => &[(0, 2)],
                "path_create_directory"
                | "path_remove_directory"
                | "path_unlink_file"
                | "path_readlink" => &[(0, 1)],
                "path_rename" => &[(0, 1), (3, 4)],
                "path_link" => &[(0, 2), (4, 5)],
                "path_symlink" => &[(2, 3)],
                _ => &[],
            };
            for &(dir, path) in paths {
                if self.rng.below(2) == 0 {
                    let text = self.path();
                    let at = self.rng.below(MEMORY - text.len().max(64));
                    self.put(at, &text);
                    args[dir] = Val::I32(3 + self.rng.below(2) as i32);
                    args[path] = Val::I32(at as i32);
                    args[path + 1] = Val::I32(text.len() as i32);
                }
            }
            // Flags a guest would pass, half the time, so that calls get past
            // their checks and reach the file system.
            if self.rng.below(2) == 0 {
                let flags: &[(usize, u64)] = match name {
                    "path_open" => &[
                        (1, 1),
                        (4, 0xf),
                        (5, 0x1fff_ffff),
                        (6, 0x1fff_ffff),
                        (7, 0x1f),
                    ],
                    "path_filestat_get" | "path_filestat_set_times" | "path_link" => &[(1, 1)],
                    _ => &[],
                };
                for &(i, mask) in flags {
                    let value = self.rng.next_u64() & mask;
                    args[i] = match args[i] {
                        Val::I64(_) => Val::I64(value as i64),
                        _ => Val::I32(value as i32),
                    };
                }
            }
            match name {
                "poll_oneoff" | "epoll_oneoff" => self.subscriptions(&mut args),
                "fd_allocate" => {
                    args[1] = Val::I64(self.rng.below(1 << 20) as i64);
                    args[2] = Val::I64(self.rng.below(1 << 20) as i64);
                }
                "sock_bind" | "sock_bind_v2" => self.bind_on_loopback(name, &mut args),
                "sock_listen" | "sock_listen_v2" | "sock_send" | "sock_send_v2" | "fd_write" => {
                    self.keep_on_loopback(&mut args, 0)
                }
                _ => {}
            }
            args
        }

        /// A bind's address made loopback wherever the host will read it
        /// as an IPv4 or IPv6 one (the record and the family byte as
        /// `read_target` reads them): `0.0.0.0` is four zero bytes, which
        /// guest memory is full of, and a listener there would take
        /// connections from other machines. Every other record still
        /// reaches the host as it was drawn. Where the address written
        /// overlaps its own record (changing where the host reads), the
        /// call gets a pointer past memory instead.
        fn bind_on_loopback(&mut self, name: &str, args: &mut [Val]) {
            const V4: [u8; 4] = [127, 0, 0, 1];
            let v6 = std::net::Ipv6Addr::LOCALHOST.octets();
            let Val::I32(record) = args[1] else { return };
            let record = record as u32 as usize;
            let v2 = name.ends_with("_v2");
            let Some((buf, len, family)) = self.address_record(record) else {
                return;
            };
            let (at, ip) = match (len, v2, family) {
                (4, ..) => (buf, &V4[..]),
                (16, ..) => (buf, &v6[..]),
                (128, true, Some(1)) => (buf + 2, &V4[..]),
                (128, true, Some(2)) => (buf + 2, &v6[..]),
                _ => return,
            };
            if at >= MEMORY {
                return;
            }
            self.put(at, ip);
            let data = self.memory.data(&self.store);
            let written = data.get(at..at + ip.len()) == Some(ip);
            if !written || self.address_record(record) != Some((buf, len, family)) {
                args[1] = Val::I32(-1);
            }
        }

        /// The address record at `at` as the host reads it: where its
        /// address is, its length, and the byte a V2 record's family is.
        fn address_record(&self, at: usize) -> Option<(usize, usize, Option<u8>)> {
            let data = self.memory.data(&self.store);
            let word = |at: usize| {
                let bytes = data.get(at..at.checked_add(4)?)?;
                Some(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize)
            };
            let (buf, len) = (word(at)?, word(at.checked_add(4)?)?);
            Some((buf, len, data.get(buf).copied()))
        }

        /// A socket the call could bind in the kernel to every address
        /// (a listen on one bound to nothing, a datagram sent from one) is
        /// bound to loopback first; one that is bound elsewhere after all,
        /// or that cannot be looked at or bound, is kept from the call (a
        /// descriptor that does not exist takes its place).
        fn keep_on_loopback(&mut self, args: &mut [Val], fd_at: usize) {
            let Val::I32(fd) = args[fd_at] else { return };
            let fds = &self.store.data().fds;
            let Ok(d) = fds.get(fd as u32) else { return };
            let Entry::Socket(_) = d.entry else { return };
            let raw = d.host_fd();
            // SAFETY: getsockname and bind on a descriptor the table
            // holds, with buffers of the sizes passed.
            let kept = unsafe {
                let mut own: libc::sockaddr_storage = std::mem::zeroed();
                let mut len = std::mem::size_of_val(&own) as libc::socklen_t;
                let at = (&mut own as *mut libc::sockaddr_storage).cast();
                if libc::getsockname(raw, at, &mut len) != 0 {
                    false
                } else {
                    match own.ss_family as i32 {
                        libc::AF_INET => {
                            let sin = &mut *at.cast::<libc::sockaddr_in>();
                            let loopback = u32::from_ne_bytes([127, 0, 0, 1]);
                            match sin.sin_port {
                                0 => {
                                    sin.sin_addr.s_addr = loopback;
                                    libc::bind(raw, at, len) == 0
                                }
                                _ => sin.sin_addr.s_addr == loopback,
                            }
                        }
                        libc::AF_INET6 => {
                            let sin6 = &mut *at.cast::<libc::sockaddr_in6>();
                            let loopback = std::net::Ipv6Addr::LOCALHOST.octets();
                            match sin6.sin6_port {
                                0 => {
                                    sin6.sin6_addr.s6_addr = loopback;
                                    libc::bind(raw, at, len) == 0
                                }
                                _ => sin6.sin6_addr.s6_addr == loopback,
                            }
                        }
                        _ => true,
                    }
                }
            };
            if !kept {
                args[fd_at] = Val::I32(-1);
            }
        }
    }

    fn shown(args: &[Val]) -> String {
        let parts: Vec<String> = args
            .iter()
            .map(|v| match v {
                Val::I32(x) => format!("{}", *x as u32),
                Val::I64(x) => format!("{}", *x as u64),
                other => format!("{other:?}"),
            })
            .collect();
        parts.join(", ")
    }

    pub fn main() {
        let (seconds, seed) = edgepoll_fuzz::options("host_imports");
        // The guest writes to stdio at random: the runtime's own 0, 1 and 2
        // become /dev/null, and reports go to copies of the real ones.
        // SAFETY: dup and dup2 on the process's stdio; the copies are owned
        // by the Files made from them.
        let (mut out, report) = unsafe {
            let (out, err) = (libc::dup(1), libc::dup(2));
            assert!(
                out >= 0 && err >= 0,
                "dup: {}",
                std::io::Error::last_os_error()
            );
            let out = File::from_raw_fd(out);
            let err = File::from_raw_fd(err);
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            libc::close(null);
            (out, Arc::new(Mutex::new(err)))
        };
        let root = std::env::temp_dir().join(format!("edgepoll-host-fuzz-{}", std::process::id()));
        let fail = {
            let report = Arc::clone(&report);
            let root = root.clone();
            move |message: String| -> ! {
                if let Ok(mut err) = report.lock() {
                    let _ = writeln!(err, "host_imports: FAILED (seed {seed}): {message}");
                }
                // Its links lead out of it: not left behind.
                let _ = std::fs::remove_dir_all(&root);
                std::process::exit(1)
            }
        };
        {
            // Any panic is a failure: say where it happened, on the real stderr.
            let report = Arc::clone(&report);
            std::panic::set_hook(Box::new(move |info| {
                if let Ok(mut err) = report.lock() {
                    let _ = writeln!(err, "host_imports: panic: {info}");
                }
            }));
        }

        if let Err(e) = lay_out_outside(&root).and_then(|()| lay_out_canary(&root)) {
            fail(format!("cannot lay out {}: {e}", root.display()));
        }
        let canary: PathBuf = root.join("canary");
        let before = snapshot(&root);
        let fds_before = open_fds();

        let invocation = Invocation {
            module: PathBuf::from("fuzz.wasm"),
            args: vec!["--flag".into()],
            // Unix sockets stay refused: the sandbox is what is fuzzed.
            allow_af_unix: false,
            env: vec!["GREETING=hello".into()],
            dirs: vec![
                Preopen {
                    guest: "/canary".into(),
                    host: canary.clone(),
                    readonly: false,
                },
                Preopen {
                    guest: "/ro".into(),
                    host: root.join("readonly"),
                    readonly: true,
                },
            ],
            memory_page_limit: None,
        };
        let engine = Engine::default();
        let host = Directories::open(&invocation)
            .and_then(|directories| host_state(&invocation, &directories))
            .unwrap_or_else(|e| fail(e));
        let mut store = Store::new(&engine, host);
        let memory = Memory::new(&mut store, MemoryType::new(1, Some(1)))
            .unwrap_or_else(|e| fail(format!("memory: {e}")));
        store.data_mut().memory = Some(memory);
        // One linker per signature of the names WasmEdge defines twice.
        let mut funcs = Vec::new();
        for v1 in [false, true] {
            let mut linker = Linker::new(&engine);
            for &(name, arity) in PROVIDED {
                if (arity != 0) != v1 || OFF_LIMITS.contains(&name) {
                    continue;
                }
                match define(&mut linker, name, arity) {
                    Ok(true) => {}
                    _ => fail(format!("{name} could not be defined")),
                }
                let func = linker
                    .get(&mut store, MODULE, name)
                    .ok()
                    .and_then(|e| e.into_func())
                    .unwrap_or_else(|| fail(format!("{name} is not a function")));
                funcs.push((name, func));
            }
        }
        let functions = funcs.len();
        let outside = root.join("outside/secret.txt");
        let mut fuzzer = Fuzzer {
            rng: Rng::new(seed),
            store,
            memory,
            funcs,
            outside: outside.to_string_lossy().into_owned().into_bytes(),
            readonly: Vec::new(),
        };

        // The watchdog: a call that does not return within 10 s is a hang.
        let current = Arc::new(Mutex::new((Instant::now(), String::new())));
        {
            let current = Arc::clone(&current);
            let report = Arc::clone(&report);
            std::thread::spawn(move || loop {
                std::thread::sleep(Duration::from_secs(1));
                let stalled = current
                    .lock()
                    .ok()
                    .filter(|c| c.0.elapsed() > Duration::from_secs(10))
                    .map(|c| c.1.clone());
                if let Some(call) = stalled {
                    if let Ok(mut err) = report.lock() {
                        let _ = writeln!(
                            err,
                            "host_imports: FAILED (seed {seed}): {call} did not return within 10 s"
                        );
                    }
                    std::process::exit(1);
                }
            });
        }

        let _ = writeln!(
            out,
            "fuzzing {} host functions for {seconds} s (seed {seed})",
            fuzzer.funcs.len()
        );
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let mut calls = 0u64;
        let mut failures_returned = 0u64;
        let mut succeeded = std::collections::BTreeSet::new();
        while Instant::now() < deadline {
            if calls.is_multiple_of(ROUND) {
                if let Err(e) = fuzzer.renew(&invocation, &root) {
                    fail(e);
                }
            }
            fuzzer.scribble();
            fuzzer.unblock_sockets();
            let (name, func) = fuzzer.funcs[fuzzer.rng.below(fuzzer.funcs.len())];
            let args = fuzzer.arguments(name, &func);
            let call = format!("call {calls}: {name}({})", shown(&args));
            if let Ok(mut c) = current.lock() {
                *c = (Instant::now(), call.clone());
            }
            let mut results = vec![Val::I32(0); func.ty(&fuzzer.store).results().len()];
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                func.call(&mut fuzzer.store, &args, &mut results)
            }));
            match outcome {
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    fail(format!("{call} panicked: {what}"));
                }
                // proc_exit, and the calls that end the guest on WasmEdge.
                Ok(Err(e))
                    if e.downcast_ref::<edgepoll_host::Exit>().is_some()
                        || e.downcast_ref::<edgepoll_host::errno::Trap>().is_some() =>
                {
                    failures_returned += 1
                }
                // Any other error out of a host function is none a guest
                // should meet.
                Ok(Err(e)) => fail(format!("{call} failed otherwise: {e:?}")),
                Ok(Ok(())) => {
                    if matches!(results.first(), Some(Val::I32(0)) | None) {
                        succeeded.insert(name);
                    }
                }
            }
            calls += 1;
        }
        if let Ok(mut c) = current.lock() {
            *c = (Instant::now(), "the checks after the run".into());
        }

        if let Err(e) = fuzzer.check_readonly(&root) {
            fail(e);
        }
        drop(fuzzer);
        let fds_after = open_fds();
        if fds_after != fds_before {
            fail(format!(
                "{fds_before} descriptors were open before the guest's state, {fds_after} after it was dropped"
            ));
        }
        let after = snapshot(&root);
        if let Some((was, is)) = before.iter().zip(&after).find(|(a, b)| a != b) {
            fail(format!("outside the canary, {was} became {is}"));
        }
        if before.len() != after.len() {
            fail(format!(
                "outside the canary, entries went from {before:?} to {after:?}"
            ));
        }
        let _ = std::fs::remove_dir_all(&root);
        // A run in which none of these ever succeeded tested little (every
        // path refused for a wrong preopen number, say): a failure too.
        // (Not `sock_open`: its random arguments name a socket kind that
        // exists in about one call in five hundred.)
        let wanted = [
            "path_open",
            "fd_read",
            "fd_write",
            "fd_readdir",
            "poll_oneoff",
        ];
        let missed: Vec<&str> = (wanted.iter().copied())
            .filter(|name| !succeeded.contains(name))
            .collect();
        if !missed.is_empty() && calls > 100_000 {
            fail(format!(
                "{calls} calls, and {missed:?} never succeeded: the run reached too little"
            ));
        }
        // A run given 10 s or more (make test gives 20) that made so few
        // calls tested too little to pass: the check above was skipped.
        if calls <= 100_000 && seconds >= 10 {
            fail(format!(
                "only {calls} calls in {seconds} s: too few to check that the usual calls succeed"
            ));
        }
        if calls <= 100_000 {
            let _ = writeln!(
                out,
                "only {calls} calls: whether the usual calls succeeded is not checked"
            );
        }
        if std::env::var_os("HOST_IMPORTS_LIST").is_some() {
            let _ = writeln!(out, "succeeded: {succeeded:?}");
        }
        let _ = writeln!(
            out,
            "{calls} calls ({failures_returned} ended the guest; {} of {} functions succeeded at least once), no panic, no hang, nothing outside the canary changed, no descriptor leaked",
            succeeded.len(),
            functions
        );
    }
}
