//! WASI preview 1 (`wasi_snapshot_preview1`) as this sandbox offers it: the ABI side of the host
//! functions (decoding guest pointers, errno values) and the linker that defines them.
//!
//! This is a small host surface written for the sandbox instead of `wasmi_wasi`: that crate sits on
//! `wasi-common`, which hands the guest a real filesystem, the host's clocks and OS entropy. We
//! need none of them and must not leak them; what we need instead is deterministic: virtual clocks
//! driven by fuel and a ChaCha20 keystream from the session's `random_seed` (`docs/PROTOCOL.md`
//! §8). Everything here is in-memory:
//!
//! - argv (`argv[0]` is `"program"`), environ (`KEY=VALUE`), stdin (fd 0; reads advance, and 0
//!   bytes means end of file), stdout and stderr (fds 1 and 2, capped together).
//! - `clock_time_get`: realtime = `issued_at` × 10⁹ + fuel consumed, monotonic = fuel consumed,
//!   in ns; `clock_res_get` = 1; other clocks `EINVAL`.
//! - `random_get`: the next bytes of the keystream, continuous across calls.
//! - `fd_fdstat_get`: fds 0–2 are character devices (stdin readable, stdout and stderr
//!   writable); `fd_close` on fds 0–2 succeeds and changes nothing, so programs that close
//!   their standard streams on the way out still finish; `fd_seek` on them is `ESPIPE`;
//!   `fd_prestat_get` is `EBADF` (no preopened directories). Other fds are `EBADF`.
//! - `poll_oneoff` never sleeps. The standard streams are always ready: an `fd_read`
//!   subscription on stdin and an `fd_write` one on stdout or stderr get an event at once, with
//!   `nbytes` the unread stdin bytes (stdin is like a regular file: all of it is there) or the
//!   room left under the output limit; the other direction on fds 0–2, and any other fd, get
//!   an event with `EBADF`. A poll with such an event, or with a subscription to an unknown clock
//!   (event `EINVAL`), returns those events, and of its clock subscriptions only the ones already
//!   due (relative timeout 0, or an absolute one not after the clock's current value). A poll of
//!   valid clocks only "sleeps", and since virtual time does not move while sleeping, every one
//!   of its clocks fires at once. Events are in subscription order.
//! - Sockets: there are none, so `sock_*` on fds 0–2 is `ENOTSOCK` and on any other fd `EBADF`.
//! - Every other preview-1 function exists with its real signature and returns `ENOSYS`, so
//!   programs that merely import them (most wasi-libc programs import `path_open` and friends)
//!   still link.
//!
//! Host work is paid in fuel like Wasm work: a call takes 1 fuel per 16 bytes of guest memory
//! it reads or writes (rounded up) before it acts. Without that, a loop of cheap calls that
//! each fill megabytes (`random_get`) does seconds of work per fuel slice and runs far past the
//! time limit; with it a slice of host calls takes about as long as a slice of Wasm code.
//!
//! Every call first checks its arguments: fds, clock ids and counts, and that every range of
//! guest memory it will touch lies inside memory (offsets computed without overflow). A call
//! that fails a check returns its errno (`EBADF`, `EINVAL`, `EFAULT` for a bad pointer or a
//! range outside memory) having charged nothing and changed nothing; only a call that passes
//! is charged, and then does its work.

use wasmi::{Caller, Engine, Error, Extern, FuncType, Linker, Val, ValType};

use super::fuel;
use super::guest::{ADDRESS_SPACE, Guest, OutOfBounds, element, field};
use super::host::{Host, MONOTONIC, REALTIME, Secret, Stop, Stream};

/// The import module name of WASI preview 1.
pub(super) const MODULE: &str = "wasi_snapshot_preview1";

// Preview-1 errno values.
const SUCCESS: u16 = 0;
const EBADF: u16 = 8;
const EFAULT: u16 = 21;
const EINVAL: u16 = 28;
const ENOSYS: u16 = 52;
const ENOTSOCK: u16 = 57;
const ESPIPE: u16 = 70;

/// Guest memory bytes a host function may read or write per unit of fuel.
const BYTES_PER_FUEL: u64 = 16;

/// wasi-libc's `IOV_MAX`: more iovecs than this in one call is `EINVAL`, which also bounds the
/// host work one call can ask for.
const IOV_MAX: u32 = 1024;

const FILETYPE_CHARACTER_DEVICE: u8 = 2;
const RIGHTS_FD_READ: u64 = 1 << 1;
const RIGHTS_FD_WRITE: u64 = 1 << 6;
const RIGHTS_POLL_FD_READWRITE: u64 = 1 << 27;

const EVENTTYPE_CLOCK: u8 = 0;
const EVENTTYPE_FD_READ: u8 = 1;
const EVENTTYPE_FD_WRITE: u8 = 2;
const SUBCLOCKFLAGS_ABSTIME: u16 = 1;
const SUBSCRIPTION_SIZE: u32 = 48;
const EVENT_SIZE: u32 = 32;

const I32: ValType = ValType::I32;
const I64: ValType = ValType::I64;

/// Every preview-1 function with its core-wasm signature (witx `wasi_snapshot_preview1`, as
/// wasi-libc imports it): name, parameters, results.
#[rustfmt::skip]
pub(super) const PREVIEW1: &[(&str, &[ValType], &[ValType])] = &[
    ("args_get", &[I32, I32], &[I32]),
    ("args_sizes_get", &[I32, I32], &[I32]),
    ("environ_get", &[I32, I32], &[I32]),
    ("environ_sizes_get", &[I32, I32], &[I32]),
    ("clock_res_get", &[I32, I32], &[I32]),
    ("clock_time_get", &[I32, I64, I32], &[I32]),
    ("fd_advise", &[I32, I64, I64, I32], &[I32]),
    ("fd_allocate", &[I32, I64, I64], &[I32]),
    ("fd_close", &[I32], &[I32]),
    ("fd_datasync", &[I32], &[I32]),
    ("fd_fdstat_get", &[I32, I32], &[I32]),
    ("fd_fdstat_set_flags", &[I32, I32], &[I32]),
    ("fd_fdstat_set_rights", &[I32, I64, I64], &[I32]),
    ("fd_filestat_get", &[I32, I32], &[I32]),
    ("fd_filestat_set_size", &[I32, I64], &[I32]),
    ("fd_filestat_set_times", &[I32, I64, I64, I32], &[I32]),
    ("fd_pread", &[I32, I32, I32, I64, I32], &[I32]),
    ("fd_prestat_get", &[I32, I32], &[I32]),
    ("fd_prestat_dir_name", &[I32, I32, I32], &[I32]),
    ("fd_pwrite", &[I32, I32, I32, I64, I32], &[I32]),
    ("fd_read", &[I32, I32, I32, I32], &[I32]),
    ("fd_readdir", &[I32, I32, I32, I64, I32], &[I32]),
    ("fd_renumber", &[I32, I32], &[I32]),
    ("fd_seek", &[I32, I64, I32, I32], &[I32]),
    ("fd_sync", &[I32], &[I32]),
    ("fd_tell", &[I32, I32], &[I32]),
    ("fd_write", &[I32, I32, I32, I32], &[I32]),
    ("path_create_directory", &[I32, I32, I32], &[I32]),
    ("path_filestat_get", &[I32, I32, I32, I32, I32], &[I32]),
    ("path_filestat_set_times", &[I32, I32, I32, I32, I64, I64, I32], &[I32]),
    ("path_link", &[I32, I32, I32, I32, I32, I32, I32], &[I32]),
    ("path_open", &[I32, I32, I32, I32, I32, I64, I64, I32, I32], &[I32]),
    ("path_readlink", &[I32, I32, I32, I32, I32, I32], &[I32]),
    ("path_remove_directory", &[I32, I32, I32], &[I32]),
    ("path_rename", &[I32, I32, I32, I32, I32, I32], &[I32]),
    ("path_symlink", &[I32, I32, I32, I32, I32], &[I32]),
    ("path_unlink_file", &[I32, I32, I32], &[I32]),
    ("poll_oneoff", &[I32, I32, I32, I32], &[I32]),
    ("proc_exit", &[I32], &[]),
    ("proc_raise", &[I32], &[I32]),
    ("sched_yield", &[], &[I32]),
    ("random_get", &[I32, I32], &[I32]),
    ("sock_accept", &[I32, I32, I32], &[I32]),
    ("sock_recv", &[I32, I32, I32, I32, I32, I32], &[I32]),
    ("sock_send", &[I32, I32, I32, I32, I32], &[I32]),
    ("sock_shutdown", &[I32, I32], &[I32]),
];

/// The parameters and results of preview-1 function `name`, if there is one.
pub(super) fn signature(name: &str) -> Option<(&'static [ValType], &'static [ValType])> {
    PREVIEW1
        .iter()
        .find(|(known, _, _)| *known == name)
        .map(|&(_, params, results)| (params, results))
}

/// A linker defining all of preview 1: every function starts as an `ENOSYS` stub and the ones
/// the sandbox implements shadow their stub.
pub(super) fn linker(engine: &Engine) -> Result<Linker<Host>, Error> {
    let mut linker = Linker::new(engine);
    linker.allow_shadowing(true);
    for &(name, params, results) in PREVIEW1 {
        let ty = FuncType::new(params.iter().copied(), results.iter().copied());
        linker.func_new(MODULE, name, ty, |_, _, results| {
            if let Some(errno) = results.first_mut() {
                *errno = Val::I32(ENOSYS.into());
            }
            Ok(())
        })?;
    }
    linker
        .func_wrap(
            MODULE,
            "args_sizes_get",
            |mut c: Ctx<'_>, count: u32, size: u32| {
                errno(sizes_get(&mut c, Table::Args, count, size))
            },
        )?
        .func_wrap(MODULE, "args_get", |mut c: Ctx<'_>, ptrs: u32, buf: u32| {
            errno(table_get(&mut c, Table::Args, ptrs, buf))
        })?
        .func_wrap(
            MODULE,
            "environ_sizes_get",
            |mut c: Ctx<'_>, count: u32, size: u32| {
                errno(sizes_get(&mut c, Table::Env, count, size))
            },
        )?
        .func_wrap(
            MODULE,
            "environ_get",
            |mut c: Ctx<'_>, ptrs: u32, buf: u32| errno(table_get(&mut c, Table::Env, ptrs, buf)),
        )?
        .func_wrap(
            MODULE,
            "fd_write",
            |mut c: Ctx<'_>, fd: u32, iovs: u32, len: u32, out: u32| {
                errno(fd_write(&mut c, fd, iovs, len, out))
            },
        )?
        .func_wrap(
            MODULE,
            "fd_read",
            |mut c: Ctx<'_>, fd: u32, iovs: u32, len: u32, out: u32| {
                errno(fd_read(&mut c, fd, iovs, len, out))
            },
        )?
        .func_wrap(
            MODULE,
            "fd_fdstat_get",
            |mut c: Ctx<'_>, fd: u32, out: u32| errno(fd_fdstat_get(&mut c, fd, out)),
        )?
        .func_wrap(
            MODULE,
            "fd_prestat_get",
            |_: Ctx<'_>, _fd: u32, _out: u32| errno(Err(Fail::Errno(EBADF))),
        )?
        .func_wrap(MODULE, "fd_close", |_: Ctx<'_>, fd: u32| errno(std_fd(fd)))?
        .func_wrap(
            MODULE,
            "fd_seek",
            |_: Ctx<'_>, fd: u32, _: u64, _: u32, _: u32| {
                errno(std_fd(fd).and(Err(Fail::Errno(ESPIPE))))
            },
        )?
        .func_wrap(
            MODULE,
            "clock_res_get",
            |mut c: Ctx<'_>, id: u32, out: u32| errno(clock_res_get(&mut c, id, out)),
        )?
        .func_wrap(
            MODULE,
            "clock_time_get",
            |mut c: Ctx<'_>, id: u32, _: u64, out: u32| errno(clock_time_get(&mut c, id, out)),
        )?
        .func_wrap(
            MODULE,
            "random_get",
            |mut c: Ctx<'_>, buf: u32, len: u32| errno(random_get(&mut c, buf, len)),
        )?
        .func_wrap(
            MODULE,
            "poll_oneoff",
            |mut c: Ctx<'_>, subs: u32, events: u32, n: u32, out: u32| {
                errno(poll_oneoff(&mut c, subs, events, n, out))
            },
        )?
        .func_wrap(
            MODULE,
            "sock_accept",
            |_: Ctx<'_>, fd: u32, _: u32, _: u32| errno(sock_fd(fd)),
        )?
        .func_wrap(
            MODULE,
            "sock_recv",
            |_: Ctx<'_>, fd: u32, _: u32, _: u32, _: u32, _: u32, _: u32| errno(sock_fd(fd)),
        )?
        .func_wrap(
            MODULE,
            "sock_send",
            |_: Ctx<'_>, fd: u32, _: u32, _: u32, _: u32, _: u32| errno(sock_fd(fd)),
        )?
        .func_wrap(MODULE, "sock_shutdown", |_: Ctx<'_>, fd: u32, _: u32| {
            errno(sock_fd(fd))
        })?
        .func_wrap(MODULE, "sched_yield", |_: Ctx<'_>| errno(Ok(())))?
        .func_wrap(
            MODULE,
            "proc_exit",
            |_: Ctx<'_>, code: u32| -> Result<(), Error> { Err(Error::host(Stop::Exit(code))) },
        )?;
    Ok(linker)
}

type Ctx<'a> = Caller<'a, Host>;

/// How a WASI function fails: an errno for the guest, or a stop for the whole program.
enum Fail {
    Errno(u16),
    Stop(Stop),
}

impl From<OutOfBounds> for Fail {
    fn from(_: OutOfBounds) -> Self {
        Self::Errno(EFAULT)
    }
}

impl From<Stop> for Fail {
    fn from(stop: Stop) -> Self {
        Self::Stop(stop)
    }
}

/// Turns a function's outcome into its errno result, or into the host error that stops the run.
fn errno(outcome: Result<(), Fail>) -> Result<u32, Error> {
    match outcome {
        Ok(()) => Ok(SUCCESS.into()),
        Err(Fail::Errno(errno)) => Ok(errno.into()),
        Err(Fail::Stop(stop)) => Err(Error::host(stop)),
    }
}

/// The guest's exported `memory` and the host state, borrowed together.
fn borrow_memory<'a>(caller: &'a mut Ctx<'_>) -> Result<(Guest<'a>, &'a mut Host), Fail> {
    let memory = caller
        .get_export("memory")
        .and_then(Extern::into_memory)
        .ok_or(Stop::Trap("WASI functions need an exported `memory`"))?;
    let (bytes, host) = memory.data_and_store_mut(caller);
    Ok((Guest::new(bytes), host))
}

/// Checks that every `(ptr, len)` range lies in the guest's memory. Host functions check all the
/// memory they will touch first, so a bad pointer is `EFAULT` before anything is paid for or
/// done: no fuel for the bytes and no partial effect.
fn check(c: &mut Ctx<'_>, ranges: &[(u32, u64)]) -> Result<(), Fail> {
    let (memory, _) = borrow_memory(c)?;
    for &(ptr, len) in ranges {
        memory.check(ptr, len)?;
    }
    Ok(())
}

/// Pays for a call that reads or writes `bytes` of guest memory; called once the call's
/// arguments are known to be valid, right before it acts.
fn charge(caller: &mut Ctx<'_>, bytes: u64) -> Result<(), Fail> {
    fuel::take(caller, bytes.div_ceil(BYTES_PER_FUEL))?;
    Ok(())
}

/// `count × size` bytes.
fn bytes(count: u32, size: u32) -> u64 {
    u64::from(count) * u64::from(size)
}

/// `Ok` for the standard fds 0–2, `EBADF` for any other.
fn std_fd(fd: u32) -> Result<(), Fail> {
    if fd <= 2 {
        Ok(())
    } else {
        Err(Fail::Errno(EBADF))
    }
}

/// No fd is a socket: `ENOTSOCK` for the standard fds 0–2, `EBADF` for any other.
fn sock_fd(fd: u32) -> Result<(), Fail> {
    std_fd(fd)?;
    Err(Fail::Errno(ENOTSOCK))
}

#[derive(Clone, Copy)]
enum Table {
    Args,
    Env,
}

impl Table {
    fn of(self, host: &Host) -> &[Secret] {
        match self {
            Self::Args => &host.args,
            Self::Env => &host.env,
        }
    }
}

/// The number of strings in a table and the bytes they take NUL-terminated; `EINVAL` if either
/// does not fit in a u32 (it cannot, then, fit in guest memory).
fn table_sizes(items: &[Secret]) -> Result<(u32, u32), Fail> {
    let size = items.iter().try_fold(0u32, |size, item| {
        let len = u32::try_from(item.len()).ok()?;
        size.checked_add(len)?.checked_add(1)
    });
    match (u32::try_from(items.len()), size) {
        (Ok(count), Some(size)) => Ok((count, size)),
        _ => Err(Fail::Errno(EINVAL)),
    }
}

fn sizes_get(c: &mut Ctx<'_>, table: Table, count_ptr: u32, size_ptr: u32) -> Result<(), Fail> {
    let (count, size) = table_sizes(table.of(c.data()))?;
    check(c, &[(count_ptr, 4), (size_ptr, 4)])?;
    charge(c, 8)?;
    let (mut memory, _) = borrow_memory(c)?;
    memory.write_u32(count_ptr, count)?;
    memory.write_u32(size_ptr, size)?;
    Ok(())
}

/// Writes the table's strings NUL-terminated from `buf` on, and a pointer to each at `ptrs`.
fn table_get(c: &mut Ctx<'_>, table: Table, ptrs: u32, buf: u32) -> Result<(), Fail> {
    let (count, size) = table_sizes(table.of(c.data()))?;
    let pointers = bytes(count, 4);
    check(c, &[(ptrs, pointers), (buf, size.into())])?;
    // Each string costs its bytes, its NUL and its 4-byte pointer.
    charge(c, pointers + u64::from(size))?;
    let (mut memory, host) = borrow_memory(c)?;
    let mut at = buf;
    for (index, item) in (0u32..).zip(table.of(host)) {
        memory.write_u32(element(ptrs, index, 4)?, at)?;
        memory.write(at, item)?;
        let len = u32::try_from(item.len()).map_err(|_| OutOfBounds)?;
        let nul = field(at, len)?;
        memory.write(nul, &[0])?;
        at = field(nul, 1)?;
    }
    Ok(())
}

/// Reads and checks an iovec array: each buffer must lie in memory and the total fit in a u32.
fn iovecs(memory: &Guest<'_>, iovs: u32, len: u32) -> Result<(Vec<(u32, u32)>, u32), Fail> {
    if len > IOV_MAX {
        return Err(Fail::Errno(EINVAL));
    }
    memory.check(iovs, bytes(len, 8))?;
    let mut buffers = Vec::new();
    let mut total = 0u32;
    for index in 0..len {
        let iov = element(iovs, index, 8)?;
        let (ptr, len) = (memory.read_u32(iov)?, memory.read_u32(field(iov, 4)?)?);
        memory.check(ptr, len.into())?;
        total = total.checked_add(len).ok_or(Fail::Errno(EINVAL))?;
        buffers.push((ptr, len));
    }
    Ok((buffers, total))
}

/// The iovecs of an `fd_read` or `fd_write`, checked together with the `u32` result pointer.
fn iovecs_and_result(
    c: &mut Ctx<'_>,
    iovs: u32,
    len: u32,
    result: u32,
) -> Result<(Vec<(u32, u32)>, u32), Fail> {
    let (memory, _) = borrow_memory(c)?;
    let iovecs = iovecs(&memory, iovs, len)?;
    memory.check(result, 4)?;
    Ok(iovecs)
}

fn fd_write(c: &mut Ctx<'_>, fd: u32, iovs: u32, len: u32, written: u32) -> Result<(), Fail> {
    let stream = match fd {
        1 => Stream::Stdout,
        2 => Stream::Stderr,
        _ => return Err(Fail::Errno(EBADF)),
    };
    let (buffers, total) = iovecs_and_result(c, iovs, len, written)?;
    charge(c, bytes(len, 8) + u64::from(total))?;
    let (mut memory, host) = borrow_memory(c)?;
    for (ptr, len) in buffers {
        host.output.write(stream, memory.bytes(ptr, len)?)?;
    }
    memory.write_u32(written, total)?;
    Ok(())
}

fn fd_read(c: &mut Ctx<'_>, fd: u32, iovs: u32, len: u32, read: u32) -> Result<(), Fail> {
    if fd != 0 {
        return Err(Fail::Errno(EBADF));
    }
    let (buffers, capacity) = iovecs_and_result(c, iovs, len, read)?;
    let unread = u64::try_from(c.data().stdin_unread()).unwrap_or(u64::MAX);
    charge(c, bytes(len, 8) + unread.min(capacity.into()))?;
    let (mut memory, host) = borrow_memory(c)?;
    let mut total = 0u32;
    for (ptr, len) in buffers {
        let n = host.read_stdin(memory.bytes_mut(ptr, len)?);
        // `n` ≤ `len` and the lengths' sum fits in a u32 (checked by `iovecs`).
        total = total.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
        if n < usize::try_from(len).unwrap_or(usize::MAX) {
            break;
        }
    }
    memory.write_u32(read, total)?;
    Ok(())
}

fn fd_fdstat_get(c: &mut Ctx<'_>, fd: u32, out: u32) -> Result<(), Fail> {
    let rights = match fd {
        0 => RIGHTS_FD_READ | RIGHTS_POLL_FD_READWRITE,
        1 | 2 => RIGHTS_FD_WRITE | RIGHTS_POLL_FD_READWRITE,
        _ => return Err(Fail::Errno(EBADF)),
    };
    // fdstat: filetype u8 @0, flags u16 @2, rights_base u64 @8, rights_inheriting u64 @16.
    let mut fdstat = [0u8; 24];
    fdstat[0] = FILETYPE_CHARACTER_DEVICE;
    fdstat[8..16].copy_from_slice(&rights.to_le_bytes());
    check(c, &[(out, 24)])?;
    charge(c, 24)?;
    let (mut memory, _) = borrow_memory(c)?;
    memory.write(out, &fdstat)?;
    Ok(())
}

fn known_clock(id: u32) -> Result<(), Fail> {
    if id == REALTIME || id == MONOTONIC {
        Ok(())
    } else {
        Err(Fail::Errno(EINVAL))
    }
}

fn clock_res_get(c: &mut Ctx<'_>, id: u32, out: u32) -> Result<(), Fail> {
    known_clock(id)?;
    check(c, &[(out, 8)])?;
    charge(c, 8)?;
    let (mut memory, _) = borrow_memory(c)?;
    memory.write_u64(out, 1)?;
    Ok(())
}

fn clock_time_get(c: &mut Ctx<'_>, id: u32, out: u32) -> Result<(), Fail> {
    known_clock(id)?;
    check(c, &[(out, 8)])?;
    charge(c, 8)?;
    // Read after the charge: the time includes this call's own fuel.
    let consumed = fuel::consumed(&*c);
    let (mut memory, host) = borrow_memory(c)?;
    let now = host.clock_ns(id, consumed).ok_or(Fail::Errno(EINVAL))?;
    memory.write_u64(out, now)?;
    Ok(())
}

fn random_get(c: &mut Ctx<'_>, buf: u32, len: u32) -> Result<(), Fail> {
    check(c, &[(buf, len.into())])?;
    charge(c, len.into())?;
    let (mut memory, host) = borrow_memory(c)?;
    host.fill_random(memory.bytes_mut(buf, len)?)?;
    Ok(())
}

/// A preview-1 subscription: userdata u64 @0, tag u8 @8, then @16 either a subscription_clock
/// (id u32 @16, timeout u64 @24, precision u64 @32, flags u16 @40) or a
/// subscription_fd_readwrite (fd u32 @16); 48 bytes in all.
struct Subscription {
    userdata: u64,
    tag: u8,
    /// The clock id or the fd.
    id_or_fd: u32,
    timeout: u64,
    flags: u16,
}

impl Subscription {
    fn read(memory: &Guest<'_>, subs: u32, index: u32) -> Result<Self, Fail> {
        let sub = element(subs, index, SUBSCRIPTION_SIZE)?;
        Ok(Self {
            userdata: memory.read_u64(sub)?,
            tag: memory.read_u8(field(sub, 8)?)?,
            id_or_fd: memory.read_u32(field(sub, 16)?)?,
            timeout: memory.read_u64(field(sub, 24)?)?,
            flags: memory.read_u16(field(sub, 40)?)?,
        })
    }

    /// A subscription to one of our clocks, the only kind that would make a poll wait.
    fn is_clock(&self) -> bool {
        self.tag == EVENTTYPE_CLOCK && known_clock(self.id_or_fd).is_ok()
    }

    /// The event it gets now, if any: (error, nbytes). `waits`: the poll has only clock
    /// subscriptions, so it sleeps until they fire; otherwise a clock fires only if it is due.
    fn event(&self, host: &Host, consumed: u64, waits: bool) -> Option<(u16, u64)> {
        match (self.tag, self.id_or_fd) {
            (EVENTTYPE_CLOCK, id) => {
                let Some(now) = host.clock_ns(id, consumed) else {
                    return Some((EINVAL, 0));
                };
                let due = if self.flags & SUBCLOCKFLAGS_ABSTIME != 0 {
                    self.timeout <= now
                } else {
                    self.timeout == 0
                };
                (waits || due).then_some((SUCCESS, 0))
            }
            (EVENTTYPE_FD_READ, 0) => Some((
                SUCCESS,
                u64::try_from(host.stdin_unread()).unwrap_or(u64::MAX),
            )),
            (EVENTTYPE_FD_WRITE, 1 | 2) => Some((SUCCESS, host.output.room())),
            _ => Some((EBADF, 0)),
        }
    }
}

/// Answers the subscriptions at once, without sleeping; see the module docs.
fn poll_oneoff(c: &mut Ctx<'_>, subs: u32, events: u32, n: u32, count: u32) -> Result<(), Fail> {
    let (subs_len, events_len) = (bytes(n, SUBSCRIPTION_SIZE), bytes(n, EVENT_SIZE));
    // No 32-bit address space holds more subscriptions than this: not a pointer problem but
    // an impossible count, like 0.
    if n == 0 || subs_len > ADDRESS_SPACE {
        return Err(Fail::Errno(EINVAL));
    }
    check(c, &[(subs, subs_len), (events, events_len), (count, 4)])?;
    charge(c, subs_len + events_len)?;
    let consumed = fuel::consumed(&*c);
    let (mut memory, host) = borrow_memory(c)?;
    // An unknown tag fails the whole call, so look at every subscription before writing any
    // event; and the poll waits only if every subscription is to one of our clocks.
    let mut waits = true;
    for index in 0..n {
        let sub = Subscription::read(&memory, subs, index)?;
        if !matches!(
            sub.tag,
            EVENTTYPE_CLOCK | EVENTTYPE_FD_READ | EVENTTYPE_FD_WRITE
        ) {
            return Err(Fail::Errno(EINVAL));
        }
        waits &= sub.is_clock();
    }
    let mut written = 0u32;
    for index in 0..n {
        let sub = Subscription::read(&memory, subs, index)?;
        let Some((error, nbytes)) = sub.event(host, consumed, waits) else {
            continue;
        };
        // event: userdata u64 @0, error u16 @8, type u8 @10, then event_fd_readwrite:
        // nbytes u64 @16, flags u16 @24 (no flags: nothing hangs up); 32 bytes in all.
        let mut event = [0u8; EVENT_SIZE as usize];
        event[..8].copy_from_slice(&sub.userdata.to_le_bytes());
        event[8..10].copy_from_slice(&error.to_le_bytes());
        event[10] = sub.tag;
        event[16..24].copy_from_slice(&nbytes.to_le_bytes());
        memory.write(element(events, written, EVENT_SIZE)?, &event)?;
        written += 1;
    }
    memory.write_u32(count, written)?;
    Ok(())
}
