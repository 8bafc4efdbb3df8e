//! The host functions, imported raw: every argument is a plain `u32` so a
//! case can pass any descriptor, pointer or length, hostile ones included.
//!
//! Only names imported with one signature in both binaries live here; the
//! four unversioned names whose V1 and V2 signatures differ (`sock_accept`,
//! `sock_recv_from`, `sock_getlocaladdr`, `sock_getpeeraddr`) are declared by
//! each binary, with the signature that binary exercises.

#[link(wasm_import_module = "wasi_snapshot_preview1")]
extern "C" {
    pub fn poll_oneoff(subs: u32, events: u32, nsubs: u32, nevents: u32) -> u32;
    pub fn epoll_oneoff(subs: u32, events: u32, nsubs: u32, nevents: u32) -> u32;
    pub fn fd_close(fd: u32) -> u32;
    pub fn proc_raise(signal: u32) -> u32;
    pub fn clock_time_get(clock: u32, precision: u64, out: u32) -> u32;
    pub fn clock_res_get(clock: u32, out: u32) -> u32;
    pub fn args_sizes_get(argc: u32, size: u32) -> u32;
    pub fn fd_read(fd: u32, iovs: u32, iovs_len: u32, nread: u32) -> u32;
    pub fn fd_write(fd: u32, iovs: u32, iovs_len: u32, nwritten: u32) -> u32;
    pub fn fd_fdstat_get(fd: u32, stat: u32) -> u32;
    pub fn fd_fdstat_set_flags(fd: u32, flags: u32) -> u32;
    pub fn fd_filestat_get(fd: u32, stat: u32) -> u32;
    pub fn fd_filestat_set_times(fd: u32, atim: u64, mtim: u64, flags: u32) -> u32;
    pub fn fd_readdir(fd: u32, buf: u32, len: u32, cookie: u64, used: u32) -> u32;
    pub fn fd_filestat_set_size(fd: u32, size: u64) -> u32;
    pub fn fd_allocate(fd: u32, offset: u64, len: u64) -> u32;
    pub fn fd_renumber(from: u32, to: u32) -> u32;
    pub fn fd_prestat_get(fd: u32, out: u32) -> u32;
    pub fn fd_prestat_dir_name(fd: u32, buf: u32, len: u32) -> u32;
    #[allow(clippy::too_many_arguments)]
    pub fn path_open(
        dirfd: u32,
        lookup: u32,
        path: u32,
        len: u32,
        oflags: u32,
        rights: u64,
        inheriting: u64,
        fdflags: u32,
        fd: u32,
    ) -> u32;
    pub fn path_filestat_get(dirfd: u32, lookup: u32, path: u32, len: u32, out: u32) -> u32;
    #[allow(clippy::too_many_arguments)]
    pub fn path_filestat_set_times(
        dirfd: u32,
        lookup: u32,
        path: u32,
        len: u32,
        atim: u64,
        mtim: u64,
        flags: u32,
    ) -> u32;
    pub fn path_create_directory(dirfd: u32, path: u32, len: u32) -> u32;
    pub fn path_remove_directory(dirfd: u32, path: u32, len: u32) -> u32;
    pub fn path_unlink_file(dirfd: u32, path: u32, len: u32) -> u32;
    pub fn path_rename(
        dirfd: u32,
        path: u32,
        len: u32,
        new_dirfd: u32,
        new: u32,
        new_len: u32,
    ) -> u32;
    #[allow(clippy::too_many_arguments)]
    pub fn path_link(
        dirfd: u32,
        lookup: u32,
        path: u32,
        len: u32,
        new_dirfd: u32,
        new: u32,
        new_len: u32,
    ) -> u32;
    pub fn path_symlink(target: u32, target_len: u32, dirfd: u32, path: u32, len: u32) -> u32;
    pub fn path_readlink(dirfd: u32, path: u32, len: u32, buf: u32, buf_len: u32, used: u32)
        -> u32;

    pub fn sock_open(family: u32, kind: u32, fd: u32) -> u32;
    pub fn sock_bind(fd: u32, addr: u32, port: u32) -> u32;
    pub fn sock_connect(fd: u32, addr: u32, port: u32) -> u32;
    pub fn sock_listen(fd: u32, backlog: u32) -> u32;
    pub fn sock_recv(fd: u32, iovs: u32, iovs_len: u32, flags: u32, len: u32, oflags: u32) -> u32;
    pub fn sock_send(fd: u32, iovs: u32, iovs_len: u32, flags: u32, len: u32) -> u32;
    #[allow(clippy::too_many_arguments)]
    pub fn sock_send_to(
        fd: u32,
        iovs: u32,
        iovs_len: u32,
        addr: u32,
        port: u32,
        flags: u32,
        len: u32,
    ) -> u32;
    pub fn sock_shutdown(fd: u32, how: u32) -> u32;
    pub fn sock_getsockopt(fd: u32, level: u32, name: u32, value: u32, size: u32) -> u32;
    pub fn sock_setsockopt(fd: u32, level: u32, name: u32, value: u32, size: u32) -> u32;
    #[allow(clippy::too_many_arguments)]
    pub fn sock_getaddrinfo(
        node: u32,
        node_len: u32,
        service: u32,
        service_len: u32,
        hints: u32,
        res: u32,
        max: u32,
        res_len: u32,
    ) -> u32;

    pub fn sock_open_v2(family: u32, kind: u32, fd: u32) -> u32;
    pub fn sock_bind_v2(fd: u32, addr: u32, port: u32) -> u32;
    pub fn sock_connect_v2(fd: u32, addr: u32, port: u32) -> u32;
    pub fn sock_listen_v2(fd: u32, backlog: u32) -> u32;
    pub fn sock_accept_v2(fd: u32, flags: u32, new_fd: u32) -> u32;
    pub fn sock_recv_v2(
        fd: u32,
        iovs: u32,
        iovs_len: u32,
        flags: u32,
        len: u32,
        oflags: u32,
    ) -> u32;
    #[allow(clippy::too_many_arguments)]
    pub fn sock_recv_from_v2(
        fd: u32,
        iovs: u32,
        iovs_len: u32,
        addr: u32,
        flags: u32,
        port: u32,
        len: u32,
        oflags: u32,
    ) -> u32;
    pub fn sock_send_v2(fd: u32, iovs: u32, iovs_len: u32, flags: u32, len: u32) -> u32;
    #[allow(clippy::too_many_arguments)]
    pub fn sock_send_to_v2(
        fd: u32,
        iovs: u32,
        iovs_len: u32,
        addr: u32,
        port: u32,
        flags: u32,
        len: u32,
    ) -> u32;
    pub fn sock_getlocaladdr_v2(fd: u32, addr: u32, port: u32) -> u32;
    pub fn sock_getpeeraddr_v2(fd: u32, addr: u32, port: u32) -> u32;
}
