//! Loading, linking and running one guest module.

use crate::compile_cache::{self, Cache};
use crate::fd_table::{rights, Descriptor, Directory, Entry, FdTable};
use crate::host::Host;
use crate::poll::Poller;
use crate::wasi::Exit;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use wasmtime::{Config, Engine, Module, OptLevel, Store, Trap, WasmBacktrace};

/// A directory `--dir` gives the guest.
#[derive(Clone)]
pub struct Preopen {
    pub guest: String,
    pub host: PathBuf,
    /// `:readonly`: WasmEdge's read-only rights.
    pub readonly: bool,
}

/// What to run: the command line, minus parsing.
pub struct Invocation {
    pub module: PathBuf,
    /// The guest's arguments, byte for byte as given (WasmEdge passes on
    /// bytes that are not UTF-8 as they are).
    pub args: Vec<std::ffi::OsString>,
    /// The guest's environment, each entry byte for byte as given (`NAME=VALUE`;
    /// WasmEdge passes an entry without `=`, or not UTF-8, as it is).
    pub env: Vec<std::ffi::OsString>,
    pub dirs: Vec<Preopen>,
    /// `--memory-page-limit`: most 64 KiB pages per memory.
    pub memory_page_limit: Option<u64>,
    /// `--allow-af-unix`: the guest may open Unix domain sockets (and so
    /// reach any the host's user may, by path), as WasmEdge's flag allows.
    pub allow_af_unix: bool,
}

/// Why a run failed: a one-line message, and whether the guest trapped
/// while running (exit 134, as on WasmEdge) rather than failing to start or
/// the runtime failing (exit 1). Told by type, not by what the message
/// says: a message quotes names a module chose.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub trapped: bool,
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure {
            message,
            trapped: false,
        }
    }
}

impl Failure {
    /// The exit code WasmEdge's command line ends with for such a failure.
    pub fn exit_code(&self) -> u8 {
        match self.trapped {
            true => 134,
            false => 1,
        }
    }
}

/// Runs the guest; returns its exit code, or why it failed.
pub fn run(invocation: &Invocation) -> Result<i32, Failure> {
    let (engine, module, cache) = compile(invocation)?;
    let directories = Directories::open(invocation)?;
    let outcome = std::thread::scope(|scope| {
        let guest = std::thread::Builder::new()
            .name("guest".into())
            .stack_size(GUEST_THREAD_STACK)
            .spawn_scoped(scope, || {
                run_compiled(
                    &engine,
                    &module,
                    invocation,
                    &directories,
                    &Instance::default(),
                )
            })
            .map_err(|e| format!("cannot start the guest's thread: {e}"))?;
        guest
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    });
    compile_cache::forget_exposed(&cache);
    outcome
}

/// The most native stack the guest's own code may use, for its calls'
/// frames and locals: deep recursion that runs on WasmEdge must run here.
/// WasmEdge's interpreter keeps its frames on the heap, without a limit;
/// its AOT code runs on the thread's stack, 8 MiB by default, where a
/// small function recursing 400 000 deep fits and 600 000 deep kills the
/// process with SIGSEGV. wasmtime's frames are larger (the same function
/// fits 400 000 deep in 16 MiB, not 600 000): 32 MiB here, and a trap
/// (exit 134) past it. wasmtime's default is 512 KiB.
pub const MAX_WASM_STACK: usize = 32 << 20;

/// The stack of each thread that runs a guest: the guest's limit above
/// plus room for the host functions it calls at its deepest. Only the
/// pages touched are ever committed.
pub const GUEST_THREAD_STACK: usize = MAX_WASM_STACK + (8 << 20);

/// How one of several instances of a guest differs from a lone guest.
#[derive(Clone, Debug, Default)]
pub struct Instance {
    /// Its number, tagged on its output lines.
    pub number: Option<usize>,
    /// Its sockets share ports (`SO_REUSEPORT`) with the other instances'.
    pub reuse_port: bool,
    /// What its supervisor sees of its sockets.
    pub shared: Option<std::sync::Arc<crate::fd_table::Shared>>,
    /// Its share of the process's descriptors (see `FdTable::max_descriptors`).
    pub max_descriptors: Option<usize>,
}

/// wasmtime as it runs guests, with the proposals WasmEdge 0.14 takes
/// unless asked (its `Configure`: mutable globals, float-to-int, sign
/// extension, multi-value, bulk memory, reference types, SIMD) and no
/// other, so that a module runs here only if it runs there. Multiple
/// memories in particular: each would get the whole page limit, so one
/// module could take that many times the host memory it was granted.
fn config() -> Config {
    use wasmtime::wasmparser::WasmFeatures as F;
    let mut config = Config::new();
    config.cranelift_opt_level(OptLevel::Speed);
    config.max_wasm_stack(MAX_WASM_STACK);
    // Checked against the limit above even though no async stack is made.
    config.async_stack_size(GUEST_THREAD_STACK);
    if std::env::var_os("EDGEPOLL_HOST_PERFMAP").is_some_and(|v| v == "1") {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    let not_wasmedge_s = F::MULTI_MEMORY
        | F::TAIL_CALL
        | F::RELAXED_SIMD
        | F::THREADS
        | F::SHARED_EVERYTHING_THREADS
        | F::EXCEPTIONS
        | F::LEGACY_EXCEPTIONS
        | F::MEMORY64
        | F::EXTENDED_CONST
        | F::FUNCTION_REFERENCES
        | F::GC
        | F::CUSTOM_PAGE_SIZES
        | F::STACK_SWITCHING
        | F::WIDE_ARITHMETIC
        | F::MEMORY_CONTROL
        | F::CUSTOM_DESCRIPTORS
        | F::COMPACT_IMPORTS;
    config.wasm_features(not_wasmedge_s, false);
    config
}

/// Compiles the module once, for as many instances as are run of it; the
/// cache it came from is to be given to [`compile_cache::forget_exposed`]
/// once they have run.
pub fn compile(invocation: &Invocation) -> Result<(Engine, Module, Cache), String> {
    let shown = invocation.module.display();
    let bytes =
        std::fs::read(&invocation.module).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let engine = Engine::new(&config()).map_err(|e| format!("cannot start wasmtime: {e}"))?;
    let cache = compile_cache::open(&invocation.dirs);
    // What an earlier guest may have left there goes before this one runs.
    compile_cache::forget_exposed(&cache);
    let module = compile_cache::load(&engine, &bytes, &cache)
        .map_err(|e| format!("{shown} is not a valid wasm module: {e}"))?;
    give_back_freed_memory();
    Ok((engine, module, cache))
}

/// Returns to the system the heap pages freed by compiling: Cranelift's
/// working memory, freed once the code is made, stays in glibc's heap
/// (whose top is pinned by what is still in use), and a guest compiled
/// anew (not found in the cache) then ran with 33 MB of RSS where one
/// loaded from the cache runs with 9; with this, 18 (most of the rest is
/// the compiler's own code, paged in from the binary).
fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: plain library call; it only releases free pages.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Why `module` cannot be run as a command, if it cannot: it has no
/// `_start`, or one that takes or returns values (which WasmEdge calls as
/// a reactor's function, with the arguments as its parameters).
pub fn not_a_command(module: &Module, path: &Path) -> Option<String> {
    let shown = path.display();
    match module.get_export("_start") {
        Some(wasmtime::ExternType::Func(start))
            if start.params().len() == 0 && start.results().len() == 0 =>
        {
            None
        }
        Some(wasmtime::ExternType::Func(_)) => Some(format!("{shown} has a _start function that takes or returns values (WasmEdge runs it as a reactor's function; edgepoll-host runs commands, whose _start takes and returns nothing)")),
        _ => Some(format!("{shown} has no _start function (is it a wasm32-wasip1 command? edgepoll-host does not run reactors)")),
    }
}

/// Runs one instance of a compiled guest in a store of its own; returns its
/// exit code, or why it failed. Call it on a thread whose stack is
/// [`GUEST_THREAD_STACK`]: on a smaller one, deep recursion in the guest
/// would run into the stack's guard page (a crash) before its limit (a
/// trap).
pub fn run_compiled(
    engine: &Engine,
    module: &Module,
    invocation: &Invocation,
    directories: &Directories,
    instance: &Instance,
) -> Result<i32, Failure> {
    let shown = invocation.module.display();
    let mut host = host_state(invocation, directories)?;
    host.fds.reuse_port = instance.reuse_port;
    host.fds.shared = instance.shared.clone();
    host.fds.max_descriptors = instance.max_descriptors;
    host.tagged = instance.number.map(crate::output::Tagged::new);
    if instance.shared.is_some() {
        host.cpu_since = crate::clock::now_nanos(crate::clock::THREAD_CPUTIME, None).ok();
    }
    // One file for all would hold whichever instance grew last.
    if let (Some(number), Some(file)) = (instance.number, &mut host.memory_report.file) {
        file.as_mut_os_string().push(format!(".{number}"));
    }
    // Dropped before the store (declared after it), even on a panic: the
    // supervisor forgets the listeners before they close.
    struct ForgetListeners(Option<std::sync::Arc<crate::fd_table::Shared>>);
    impl Drop for ForgetListeners {
        fn drop(&mut self) {
            if let Some(shared) = &self.0 {
                shared.forget_listeners();
            }
        }
    }
    let mut store = Store::new(engine, host);
    let _forget = ForgetListeners(instance.shared.clone());
    store.limiter(|host| &mut host.memory_report);
    let linker =
        crate::linker::link(engine, module).map_err(|e| format!("cannot link {shown}: {e}"))?;
    let result = (|| -> Result<i32, Failure> {
        let started = linker
            .instantiate(&mut store, module)
            .map_err(|e| describe_failure(&e, "start"))?;
        // WasmEdge's functions use memory 0 whatever its export's name:
        // the one named `memory`, else the first exported. (A memory not
        // exported at all, or a WASI call from the start function, before
        // this, finds none here: EFAULT, where WasmEdge serves it. wasi-libc
        // and Rust programs export `memory` and begin in `_start`.)
        let memory = started.get_memory(&mut store, "memory").or_else(|| {
            let exports: Vec<_> = started
                .exports(&mut store)
                .map(|e| e.into_extern())
                .collect();
            exports.into_iter().find_map(wasmtime::Extern::into_memory)
        });
        store.data_mut().memory = memory;
        let start = started
            .get_typed_func::<(), ()>(&mut store, "_start")
            .map_err(|_| not_a_command(module, &invocation.module).unwrap_or_default())?;
        match start.call(&mut store, ()) {
            Ok(()) => Ok(0),
            Err(e) => match e.downcast_ref::<Exit>() {
                Some(Exit(code)) => Ok(*code),
                None => Err(describe_failure(&e, "run")),
            },
        }
    })();
    if let Some(tagged) = &mut store.data_mut().tagged {
        tagged.flush();
    }
    result
}

/// The name a guest sees for `--dir GUEST:HOST`, as WasmEdge derives it
/// (`VINode::canonicalGuest`): leading slashes dropped, `..` pops a
/// component, a component that starts with `.` is dropped when exactly one
/// precedes it, and nothing left is `/`. So `/sandbox` is `sandbox`.
fn canonical_guest(guest: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in guest.split('/').filter(|p| !p.is_empty()) {
        if part == ".." {
            parts.pop();
        } else if !part.starts_with('.') || parts.len() != 1 {
            parts.push(part);
        }
    }
    if parts.is_empty() {
        return "/".into();
    }
    parts.join("/")
}

/// The guest's `argv[0]`, as WasmEdge's command line gives it: the module's
/// file name, its extension made `.wasm` (`dir/app_aot.so` is `app_aot.wasm`).
fn program_name(module: &std::path::Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    let name = module.file_name().map(std::path::Path::new);
    name.map(|n| n.with_extension("wasm").as_os_str().as_bytes().to_vec())
        .unwrap_or_default()
}

/// The `--dir`s whose host directory can be opened. The others are left
/// out, each told in one line on stderr, and the guest runs without them,
/// as WasmEdge does ("Bind guest directory failed"): those after it are
/// numbered as if it had not been given.
pub fn bindable(dirs: Vec<Preopen>) -> Vec<Preopen> {
    dirs.into_iter()
        .filter(|dir| match open_directory(&dir.host) {
            Ok(_) => true,
            Err(e) => {
                crate::output::say(&format!(
                    "--dir {}:{}: {e}; the guest runs without it (as on WasmEdge)",
                    dir.guest,
                    dir.host.display()
                ));
                false
            }
        })
        .collect()
}

/// The `--dir` directories of a run, opened once, before its guest (or any
/// of its instances) starts. Each guest gets descriptors of its own from
/// these ([`host_state`]), never by the host paths again: an instance
/// started again could otherwise find that a path leads elsewhere by then,
/// where another instance's guest made it (a preopen inside another,
/// writable one, renamed away and a symbolic link put in its place).
pub struct Directories(Vec<OwnedFd>);

impl Directories {
    /// Each of `invocation`'s `--dir`s, in order.
    pub fn open(invocation: &Invocation) -> Result<Directories, String> {
        let opened = invocation.dirs.iter().map(|dir| {
            open_directory(&dir.host)
                .map_err(|e| format!("--dir {}:{}: {e}", dir.guest, dir.host.display()))
        });
        opened.collect::<Result<_, _>>().map(Directories)
    }
}

/// The per-guest state `invocation` asks for: stdio, the preopened
/// directories (from 3, as WasmEdge numbers them; `directories`, opened
/// from `invocation`), arguments, environment, the poller; the guest's
/// memory is set once it is instantiated.
pub fn host_state(invocation: &Invocation, directories: &Directories) -> Result<Host, String> {
    let mut fds = FdTable::with_stdio(random_seed()?);
    fds.allow_af_unix = invocation.allow_af_unix;
    // WasmEdge numbers preopened directories from 3 (`Environ::init`).
    for ((dir, opened), fd) in invocation.dirs.iter().zip(&directories.0).zip(3..) {
        let host = reopen(opened)
            .map_err(|e| format!("--dir {}:{}: {e}", dir.guest, dir.host.display()))?;
        let (base, inheriting) = if dir.readonly {
            (
                rights::PREOPEN_READONLY,
                rights::PREOPEN_READONLY_INHERITING,
            )
        } else {
            (rights::PREOPEN, rights::PREOPEN_INHERITING)
        };
        let mut preopen = Descriptor::new(
            Entry::Dir(Directory {
                fd: host,
                preopened: Some(canonical_guest(&dir.guest)),
            }),
            base,
            inheriting,
        );
        preopen.readonly = dir.readonly;
        fds.insert_at(fd, preopen);
    }
    let mut args = vec![program_name(&invocation.module)];
    args.extend(invocation.args.iter().map(|a| a.as_bytes().to_vec()));
    Ok(Host {
        args,
        env: invocation
            .env
            .iter()
            .map(|e| e.as_bytes().to_vec())
            .collect(),
        fds,
        poller: Poller::new().map_err(|e| format!("cannot create epoll instance: {e}"))?,
        memory: None,
        tagged: None,
        cpu_since: None,
        memory_report: crate::host::MemoryReport {
            file: std::env::var_os("EDGEPOLL_HOST_MEMORY_FILE").map(PathBuf::from),
            max_bytes: invocation
                .memory_page_limit
                .map(|pages| pages.saturating_mul(64 * 1024)),
            ..Default::default()
        },
    })
}

/// A descriptor of its own (its own offset for `fd_readdir`) to the
/// directory `opened` is on: `.` in it, which looks no path up, or, for a
/// directory its user may read but not search (which `.` needs, and which
/// WasmEdge binds), the descriptor's own link in `/proc`.
fn reopen(opened: &OwnedFd) -> std::io::Result<OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
    // SAFETY: a NUL-terminated name and an open descriptor; what openat
    // returns is a new descriptor, owned here.
    let mut fd = unsafe { libc::openat(opened.as_raw_fd(), c".".as_ptr(), flags) };
    if fd < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EACCES) {
        let own = std::ffi::CString::new(format!("/proc/self/fd/{}", opened.as_raw_fd()))
            .map_err(std::io::Error::other)?;
        // SAFETY: as above.
        fd = unsafe { libc::open(own.as_ptr(), flags) };
    }
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and nothing else holds it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A preopened directory's host descriptor: the root every guest path
/// below it is resolved from. A path whose last part is a symbolic link
/// is not followed, as WasmEdge binds no such `--dir` (`O_NOFOLLOW`): a
/// guest given a directory and one inside it could otherwise turn the
/// inner one into a link that leads out, for the next run. (A link
/// further up the path is followed, on both.) `link/` is a directory, and
/// followed on both.
fn open_directory(path: &Path) -> std::io::Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path);
    // The kernel says ENOTDIR for a link, which is not where to look.
    let link = |e: &std::io::Error| {
        e.raw_os_error() == Some(libc::ENOTDIR)
            && std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
    };
    match opened {
        Ok(file) => Ok(file.into()),
        Err(e) if link(&e) => Err(std::io::Error::new(
            e.kind(),
            "a symbolic link, bound by neither runtime (name its directory, or end it with '/')",
        )),
        Err(e) => Err(e),
    }
}

/// A seed for descriptor numbers, from the kernel's random source.
fn random_seed() -> Result<u64, String> {
    let mut seed = [0u8; 8];
    // SAFETY: getrandom writes at most `seed.len()` bytes into `seed`.
    let n = unsafe { libc::getrandom(seed.as_mut_ptr().cast(), seed.len(), 0) };
    if n != seed.len() as isize {
        return Err(format!(
            "cannot read random bytes: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(u64::from_ne_bytes(seed))
}

fn describe_failure(e: &wasmtime::Error, phase: &str) -> Failure {
    let names: Vec<String> = e
        .downcast_ref::<WasmBacktrace>()
        .map(|bt| {
            let demangled = bt.frames().iter().filter_map(|f| f.func_name());
            demangled
                .map(|n| format!("{:#}", rustc_demangle::demangle(n)))
                .collect()
        })
        .unwrap_or_default();
    // The innermost frame is often std's abort; the first frame outside the
    // panic machinery is where the guest's own code went wrong.
    let machinery = [
        "std::",
        "core::",
        "alloc::",
        "__rust",
        "rust_panic",
        "abort",
        "_start",
        "__main",
        "main",
    ];
    let origin = names.iter().find(|n| {
        !machinery
            .iter()
            .any(|m| n.starts_with(m) || n.contains("::panicking::"))
    });
    let function = match (names.first(), origin) {
        (Some(inner), Some(origin)) if inner != origin => format!("{inner} (from {origin})"),
        (Some(inner), _) => inner.to_string(),
        (None, _) => "an unnamed function".to_string(),
    };
    // A trap in the module's start function is a failed instantiation,
    // which WasmEdge's command line ends with 1, not a trap's 134.
    let (said, trapped) = match phase {
        "run" => ("guest trapped during", true),
        _ => ("guest failed, trapped during", false),
    };
    let trap = match (
        e.downcast_ref::<Trap>(),
        e.downcast_ref::<crate::errno::Trap>(),
        e.downcast_ref::<crate::errno::Failed>(),
    ) {
        (Some(trap), _, _) => trap.to_string(),
        // A host function that failed as a function, as WasmEdge's do at times.
        (None, Some(failure), _) => failure.to_string(),
        (None, None, Some(failure)) => failure.to_string(),
        (None, None, None) => return format!("guest failed during {phase}: {e}").into(),
    };
    Failure {
        message: format!("{said} {phase}: {trap} in {function}"),
        trapped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(module (memory 1))`, and the same with a second memory.
    const ONE_MEMORY: &[u8] = b"\0asm\x01\0\0\0\x05\x03\x01\x00\x01";
    const TWO_MEMORIES: &[u8] = b"\0asm\x01\0\0\0\x05\x05\x02\x00\x01\x00\x01";

    #[test]
    fn a_module_with_two_memories_is_refused() {
        let engine = Engine::new(&config()).expect("engine");
        assert!(Module::new(&engine, ONE_MEMORY).is_ok());
        assert!(Module::new(&engine, TWO_MEMORIES).is_err());
    }

    /// A module of one function, [] -> [], of `code` (then `end`).
    fn one_function(code: &[u8]) -> Vec<u8> {
        let body = [&[0][..], code, &[0x0b]].concat(); // no locals
        let mut module = b"\0asm\x01\0\0\0".to_vec();
        module.extend([1, 4, 1, 0x60, 0, 0]); // type: [] -> []
        module.extend([3, 2, 1, 0]); // one function of that type
        module.extend([10, body.len() as u8 + 2, 1, body.len() as u8]);
        module.extend(body);
        module
    }

    /// What WasmEdge 0.14 refuses unless asked is refused here, where the
    /// plain form of each compiles: a tail call (`return_call 0` beside
    /// `call 0`), a typed function reference (`ref.as_non_null` beside
    /// `ref.is_null`).
    #[test]
    fn proposals_wasmedge_leaves_off_are_off() {
        let engine = Engine::new(&config()).expect("engine");
        let compiles = |code: &[u8]| Module::new(&engine, one_function(code)).is_ok();
        assert!(compiles(&[0x10, 0]), "call");
        assert!(!compiles(&[0x12, 0]), "return_call");
        assert!(
            compiles(&[0xd0, 0x70, 0xd1, 0x1a]),
            "ref.null func; ref.is_null"
        );
        assert!(!compiles(&[0xd0, 0x70, 0xd4, 0x1a]), "ref.as_non_null");
    }
}
