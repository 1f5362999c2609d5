//! The seccomp-BPF filters bwrap loads into the sandbox (`--add-seccomp-fd`), generated here.
//!
//! A deny list on top of bwrap's namespaces: syscalls an agent never needs and that widen the
//! kernel attack surface or let a process leave its namespaces fail with `EPERM`; `clone3`
//! fails with `ENOSYS` so libc falls back to `clone`, whose namespace flags can be inspected.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};

use crate::error::{Error, Result};

/// Syscalls denied outright.
const DENIED: &[(&str, libc::c_long)] = &[
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("chroot", libc::SYS_chroot),
    ("unshare", libc::SYS_unshare),
    ("setns", libc::SYS_setns),
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("bpf", libc::SYS_bpf),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("reboot", libc::SYS_reboot),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("acct", libc::SYS_acct),
    ("syslog", libc::SYS_syslog),
    ("settimeofday", libc::SYS_settimeofday),
    ("clock_settime", libc::SYS_clock_settime),
    ("clock_adjtime", libc::SYS_clock_adjtime),
    ("adjtimex", libc::SYS_adjtimex),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("quotactl", libc::SYS_quotactl),
    ("vhangup", libc::SYS_vhangup),
    ("fsopen", libc::SYS_fsopen),
    ("fsmount", libc::SYS_fsmount),
    ("fsconfig", libc::SYS_fsconfig),
    ("fspick", libc::SYS_fspick),
    ("move_mount", libc::SYS_move_mount),
    ("open_tree", libc::SYS_open_tree),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    #[cfg(target_arch = "x86_64")]
    ("iopl", libc::SYS_iopl),
    #[cfg(target_arch = "x86_64")]
    ("ioperm", libc::SYS_ioperm),
    #[cfg(target_arch = "x86_64")]
    ("uselib", libc::SYS_uselib),
];

/// Names of the syscalls denied unconditionally (for diagnostics and tests).
pub fn denied_syscalls() -> impl Iterator<Item = &'static str> {
    DENIED.iter().map(|(n, _)| *n)
}

const NAMESPACE_FLAGS: &[u64] = &[
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWCGROUP as u64,
];

fn err(e: impl std::fmt::Display) -> Error {
    Error::Seccomp(e.to_string())
}

fn masked(arg: u8, mask: u64) -> Result<SeccompRule> {
    let cond = SeccompCondition::new(arg, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(mask), mask).map_err(err)?;
    SeccompRule::new(vec![cond]).map_err(err)
}

fn equals(arg: u8, len: SeccompCmpArgLen, value: u64) -> Result<SeccompRule> {
    let cond = SeccompCondition::new(arg, len, SeccompCmpOp::Eq, value).map_err(err)?;
    SeccompRule::new(vec![cond]).map_err(err)
}

fn arch() -> Result<TargetArch> {
    TargetArch::try_from(std::env::consts::ARCH).map_err(err)
}

/// The main filter: denied syscalls, namespace-creating `clone`, `AF_PACKET` sockets and the
/// terminal-injection ioctls, each failing with `EPERM`.
pub fn deny_filter() -> Result<BpfProgram> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for (_, nr) in DENIED {
        rules.insert(*nr, Vec::new());
    }
    let clone_rules = NAMESPACE_FLAGS.iter().map(|f| masked(0, *f)).collect::<Result<Vec<_>>>()?;
    rules.insert(libc::SYS_clone, clone_rules);
    rules.insert(libc::SYS_socket, vec![equals(0, SeccompCmpArgLen::Dword, libc::AF_PACKET as u64)?]);
    rules.insert(
        libc::SYS_ioctl,
        vec![equals(1, SeccompCmpArgLen::Dword, libc::TIOCSTI)?, equals(1, SeccompCmpArgLen::Dword, libc::TIOCLINUX)?],
    );
    let filter = SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(libc::EPERM as u32), arch()?)
        .map_err(err)?;
    BpfProgram::try_from(filter).map_err(err)
}

/// The `clone3` filter: `ENOSYS`, so libc falls back to `clone` (whose flags are checked).
pub fn clone3_filter() -> Result<BpfProgram> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    rules.insert(libc::SYS_clone3, Vec::new());
    let filter = SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(libc::ENOSYS as u32), arch()?)
        .map_err(err)?;
    BpfProgram::try_from(filter).map_err(err)
}

/// Serializes a program as the kernel's `struct sock_filter` array (what bwrap reads).
pub fn to_bytes(program: &BpfProgram) -> Vec<u8> {
    let mut out = Vec::with_capacity(program.len() * 8);
    for insn in program {
        out.extend_from_slice(&insn.code.to_ne_bytes());
        out.push(insn.jt);
        out.push(insn.jf);
        out.extend_from_slice(&insn.k.to_ne_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_compile() {
        let deny = deny_filter().unwrap();
        assert!(deny.len() > DENIED.len());
        assert_eq!(to_bytes(&deny).len(), deny.len() * 8);
        assert!(!clone3_filter().unwrap().is_empty());
        assert!(denied_syscalls().any(|s| s == "ptrace"));
    }
}
