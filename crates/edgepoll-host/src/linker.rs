//! The top of the runtime: every import a module asks of
//! `wasi_snapshot_preview1`, defined by the area that serves it (WASI
//! preview1 in `wasi/link.rs`, WasmEdge's sockets in `sock/link.rs`,
//! polling in `poll/link.rs`, each beside its code). The areas know nothing
//! of each other; only their `link.rs` knows wasmtime and the host state.
//!
//! For the unversioned socket names WasmEdge registers its V1 function and,
//! when a module imports the name with another signature, its V2 function
//! instead (`lib/executor/instantiate/import.cpp`); the parameter count
//! chooses here in the same way. An import of anything else (another
//! name, another module) fails the start, as on WasmEdge, but for the
//! `wasi:logging/logging` plugin WasmEdge links into every module
//! (`logging/`).

use crate::host::{Host, M};
use crate::{poll, sock, wasi};
use wasmtime::{Engine, ExternType, Linker, Module};

pub fn link(engine: &Engine, module: &Module) -> wasmtime::Result<Linker<Host>> {
    let mut linker = Linker::new(engine);
    let mut defined = std::collections::HashSet::new();
    for import in module.imports() {
        let name = import.name();
        let known = match import.ty() {
            ExternType::Func(ty) if import.module() == M => {
                // Imported twice (AssemblyScript does): defined once.
                !defined.insert(name.to_string()) || define(&mut linker, name, ty.params().len())?
            }
            // WasmEdge's built-in plugin, linked into every module there.
            ExternType::Func(_) if import.module() == crate::logging::MODULE => {
                !defined.insert(format!("{}::{name}", crate::logging::MODULE))
                    || crate::logging::link::define(&mut linker, name)?
            }
            _ => false,
        };
        if !known {
            // As WasmEdge: the module does not start (its command line
            // exits 1), rather than failing at a call it may never make.
            return Err(wasmtime::Error::msg(format!(
                "unknown import {}::{name} (edgepoll-host provides WasmEdge 0.14's {M} functions and its wasi:logging plugin only)",
                import.module()
            )));
        }
    }
    Ok(linker)
}

/// Every function this runtime provides. The number is the parameter count
/// that picks the V1 signature of the four unversioned socket names that
/// WasmEdge defines twice (0: the only or the V2 signature); see [`define`].
pub const PROVIDED: &[(&str, usize)] = &[
    ("args_get", 0),
    ("args_sizes_get", 0),
    ("environ_get", 0),
    ("environ_sizes_get", 0),
    ("clock_res_get", 0),
    ("clock_time_get", 0),
    ("random_get", 0),
    ("proc_exit", 0),
    ("proc_raise", 0),
    ("sched_yield", 0),
    ("poll_oneoff", 0),
    ("epoll_oneoff", 0),
    ("fd_read", 0),
    ("fd_write", 0),
    ("fd_close", 0),
    ("fd_fdstat_get", 0),
    ("fd_fdstat_set_flags", 0),
    ("fd_filestat_get", 0),
    ("fd_prestat_get", 0),
    ("fd_prestat_dir_name", 0),
    ("fd_seek", 0),
    ("fd_tell", 0),
    ("fd_sync", 0),
    ("fd_datasync", 0),
    ("fd_pread", 0),
    ("fd_pwrite", 0),
    ("fd_advise", 0),
    ("fd_allocate", 0),
    ("fd_filestat_set_size", 0),
    ("fd_filestat_set_times", 0),
    ("fd_fdstat_set_rights", 0),
    ("fd_renumber", 0),
    ("fd_readdir", 0),
    ("path_open", 0),
    ("path_filestat_get", 0),
    ("path_filestat_set_times", 0),
    ("path_create_directory", 0),
    ("path_remove_directory", 0),
    ("path_unlink_file", 0),
    ("path_rename", 0),
    ("path_link", 0),
    ("path_symlink", 0),
    ("path_readlink", 0),
    ("sock_open", 0),
    ("sock_open_v2", 0),
    ("sock_bind", 0),
    ("sock_bind_v2", 0),
    ("sock_connect", 0),
    ("sock_connect_v2", 0),
    ("sock_listen", 0),
    ("sock_listen_v2", 0),
    ("sock_accept", 2),
    ("sock_accept", 0),
    ("sock_accept_v2", 0),
    ("sock_recv", 0),
    ("sock_recv_v2", 0),
    ("sock_recv_from", 7),
    ("sock_recv_from", 0),
    ("sock_recv_from_v2", 0),
    ("sock_send", 0),
    ("sock_send_v2", 0),
    ("sock_send_to", 0),
    ("sock_send_to_v2", 0),
    ("sock_shutdown", 0),
    ("sock_getlocaladdr", 4),
    ("sock_getpeeraddr", 4),
    ("sock_getlocaladdr", 0),
    ("sock_getpeeraddr", 0),
    ("sock_getlocaladdr_v2", 0),
    ("sock_getpeeraddr_v2", 0),
    ("sock_getsockopt", 0),
    ("sock_setsockopt", 0),
    ("sock_getaddrinfo", 0),
];

/// Defines `name` if this runtime provides it (each area defines its own
/// imports beside its code); false otherwise.
pub fn define(linker: &mut Linker<Host>, name: &str, arity: usize) -> wasmtime::Result<bool> {
    Ok(wasi::link::define(linker, name, arity)?
        || sock::link::define(linker, name, arity)?
        || poll::link::define(linker, name, arity)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_listed_as_provided_is_defined() {
        let engine = Engine::default();
        for &(name, arity) in PROVIDED {
            let mut linker = Linker::new(&engine);
            assert!(
                define(&mut linker, name, arity).expect("defines"),
                "{name} ({arity} parameters) is listed but not defined"
            );
        }
        let mut linker = Linker::new(&engine);
        assert!(!define(&mut linker, "fd_no_such_function", 0).expect("answers"));
    }
}
