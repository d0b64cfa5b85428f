//! Labels of a real policy compared with libselinux's `matchpathcon`.
//!
//! Debian's `selinux-policy-default` (5 600 specs) labels a synthetic tree
//! made of this machine's own paths (`/usr`, `/etc`, `/var`, … with their
//! real types and hard links, up to ~150 000 names) plus FIFOs, sockets and
//! devices sprinkled in and a few paths that exercise the substitutions. The
//! tree's `/etc/selinux` is the host's, read through the file reader. Every
//! label is compared with `matchpathcon -N -m TYPE PATH…` (run in batches):
//!
//! * [`LookupOrder::Libselinux`] must agree on every path;
//! * [`LookupOrder::ComposefsRs`] (the default, composefs-rs's "last spec
//!   wins") may differ only where libselinux's winner is an exact-path spec
//!   that it moved after the patterns; each such path is printed.
//!
//! Skips when the policy or `matchpathcon` is missing, unless
//! `CFS_TEST_PRIVILEGED=require` (`apt-get install selinux-policy-default
//! selinux-utils`).
#![allow(clippy::print_stderr)]

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use cfs_core::tree::{
    DirEntry, Directory, ExternalFile, FileSystem, FileType, Inode, InodeId, InodeKind,
    RegularFile, Stat,
};
use cfs_deploy::selinux::{
    LookupOrder, Outcome, Policy, SelinuxError, XATTR_NAME, dir_reader, label_with,
};

const FILE_CONTEXTS: &str = "/etc/selinux/default/contexts/files/file_contexts";

fn available() -> bool {
    let have = Path::new(FILE_CONTEXTS).exists()
        && Command::new("matchpathcon")
            .args(["-N", "-m", "dir", "/"])
            .output()
            .is_ok_and(|o| o.status.success());
    if !have && std::env::var("CFS_TEST_PRIVILEGED").as_deref() == Ok("require") {
        panic!(
            "{FILE_CONTEXTS} and matchpathcon are needed \
             (apt-get install selinux-policy-default selinux-utils)"
        );
    }
    if !have {
        eprintln!("selinux_matchpathcon: skipped ({FILE_CONTEXTS} or matchpathcon missing)");
    }
    have
}

/// Top-level directories scanned, with the most names taken from each.
const ROOTS: &[(&str, usize)] = &[
    ("etc", 50_000),
    ("usr", 100_000),
    ("var", 20_000),
    ("bin", 10),
    ("boot", 5_000),
    ("dev", 5_000),
    ("home", 5_000),
    ("lib", 10),
    ("lib32", 10),
    ("lib64", 10),
    ("libx32", 10),
    ("media", 1_000),
    ("mnt", 1_000),
    ("opt", 10_000),
    ("root", 3_000),
    ("run", 3_000),
    ("sbin", 10),
    ("srv", 1_000),
    ("tmp", 2_000),
];

/// Paths that exercise parts of the policy this host may not have, as files
/// (parents are created as directories).
const EXTRA: &[&str] = &[
    "/home/alice/.ssh/authorized_keys",
    "/home/alice/public_html/index.html",
    "/root/.ssh/known_hosts",
    "/var/www/html/index.html",
    "/var/www/cgi-bin/run.cgi",
    "/var/lib/mysql/ibdata1",
    "/var/lib/private/systemd/x",
    "/var/cache/private/x",
    "/var/log/private/x",
    "/var/spool/mail/alice",
    "/lib32/libc.so.6",
    "/libx32/libc.so.6",
    "/usr/lib64/libfoo.so",
    "/usr/lib32/libfoo.so",
    "/usr/local/lib/libbar.so.1",
    "/usr/local/lib64/libbar.so.1",
    "/etc/init.d/ssh",
    "/etc/systemd/system/foo.service",
    "/etc/systemd/user/bar.service",
    "/run/lock/subsys/foo",
    "/srv/ftp/pub/file",
    "/tmp/.X11-unix/X0",
];

struct Builder {
    fs: FileSystem,
    /// Host (dev, ino) of hard-linked files → inode.
    links: HashMap<(u64, u64), InodeId>,
    names: usize,
    dirs: usize,
}

impl Builder {
    fn add(&mut self, dir: InodeId, name: &[u8], inode: InodeId, alias: bool) {
        self.fs.directory_mut(dir).unwrap().push(DirEntry {
            name: name.into(),
            inode,
            alias,
        });
        self.names += 1;
    }

    fn new_inode(&mut self, kind: InodeKind) -> InodeId {
        let stat = Stat {
            mode: 0o644,
            ..Stat::default()
        };
        self.fs.push_inode(Inode::new(stat, kind))
    }

    /// Every 40th directory also gets a FIFO, a socket and two devices.
    fn sprinkle(&mut self, dir: InodeId) {
        self.dirs += 1;
        if !self.dirs.is_multiple_of(40) {
            return;
        }
        for (name, kind) in [
            (&b"zz-cfs-fifo"[..], InodeKind::Fifo),
            (b"zz-cfs-sock", InodeKind::Socket),
            (b"zz-cfs-blk", InodeKind::BlockDevice(0x0801)),
            (b"zz-cfs-chr", InodeKind::CharDevice(0x0103)),
        ] {
            let id = self.new_inode(kind);
            self.add(dir, name, id, false);
        }
    }

    /// Copies `host` (a directory) into `dir`, depth first in name order,
    /// taking at most `budget` names.
    fn scan(&mut self, dir: InodeId, host: &Path, mut budget: usize) {
        let mut stack = vec![(dir, host.to_path_buf())];
        while let Some((dir, host)) = stack.pop() {
            self.sprinkle(dir);
            let Ok(read) = std::fs::read_dir(&host) else {
                continue;
            };
            let mut children: Vec<_> = read.filter_map(Result::ok).collect();
            children.sort_by_key(|e| e.file_name());
            for child in children.into_iter().rev() {
                if budget == 0 {
                    return;
                }
                let name = child.file_name();
                let bytes = name.as_bytes();
                // matchpathcon's output is one "path\tcontext" line per path.
                if bytes.contains(&b'\n') || bytes.contains(&b'\t') {
                    continue;
                }
                let Ok(md) = child.path().symlink_metadata() else {
                    continue;
                };
                let ft = md.file_type();
                let kind = if ft.is_dir() {
                    InodeKind::Directory(Directory::new())
                } else if ft.is_symlink() {
                    InodeKind::Symlink(b"target".as_slice().into())
                } else if ft.is_fifo() {
                    InodeKind::Fifo
                } else if ft.is_socket() {
                    InodeKind::Socket
                } else if ft.is_block_device() {
                    InodeKind::BlockDevice(0)
                } else if ft.is_char_device() {
                    InodeKind::CharDevice(md.rdev() as u32)
                } else {
                    InodeKind::Regular(RegularFile::External(ExternalFile {
                        size: md.len(),
                        payload: None,
                        digest: None,
                    }))
                };
                budget -= 1;
                let is_dir = ft.is_dir();
                if !is_dir
                    && md.nlink() > 1
                    && let Some(&id) = self.links.get(&(md.dev(), md.ino()))
                {
                    self.fs.inode_mut(id).nlink += 1;
                    self.add(dir, bytes, id, true);
                    continue;
                }
                let id = self.new_inode(kind);
                if !is_dir && md.nlink() > 1 {
                    self.links.insert((md.dev(), md.ino()), id);
                }
                self.add(dir, bytes, id, false);
                if is_dir {
                    stack.push((id, child.path()));
                }
            }
        }
    }

    /// The directory at `path`, created as needed (`None` if the host has a
    /// non-directory on the way).
    fn ensure_dir(&mut self, path: &[u8]) -> Option<InodeId> {
        let mut cur = InodeId::ROOT;
        for name in path.split(|&b| b == b'/').filter(|n| !n.is_empty()) {
            let found = self
                .fs
                .directory(cur)
                .unwrap()
                .entries()
                .iter()
                .find(|e| &*e.name == name)
                .map(|e| e.inode);
            cur = match found {
                Some(id) if self.fs.directory(id).is_some() => id,
                Some(_) => return None,
                None => {
                    let id = self.new_inode(InodeKind::Directory(Directory::new()));
                    self.add(cur, name, id, false);
                    id
                }
            };
        }
        Some(cur)
    }
}

/// The path of every spec without regex meta-characters (`\\x` unescaped),
/// with its type: where libselinux's order and composefs-rs's can differ.
fn exact_spec_paths() -> Vec<(String, FileType)> {
    let mut out = Vec::new();
    for file in [FILE_CONTEXTS, &format!("{FILE_CONTEXTS}.homedirs")] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let Some(regex) = fields.first() else {
                continue;
            };
            if regex.starts_with('#')
                || regex.contains(['.', '^', '$', '?', '*', '+', '|', '[', '(', '{'])
            {
                continue;
            }
            let ft = match fields.get(1).copied() {
                Some("-d") => FileType::Directory,
                Some("-l") => FileType::Symlink,
                Some("-p") => FileType::Fifo,
                Some("-s") => FileType::Socket,
                Some("-b") => FileType::BlockDevice,
                Some("-c") => FileType::CharDevice,
                _ => FileType::Regular,
            };
            let mut path = String::new();
            let mut chars = regex.chars();
            while let Some(c) = chars.next() {
                path.push(if c == '\\' {
                    chars.next().unwrap_or(c)
                } else {
                    c
                });
            }
            out.push((path, ft));
        }
    }
    out
}

/// The synthetic tree: host paths, sprinkled special files, [`EXTRA`], the
/// paths of exact-path specs.
fn host_tree() -> FileSystem {
    let root = Stat {
        mode: 0o755,
        ..Stat::default()
    };
    let mut b = Builder {
        fs: FileSystem::new(root),
        links: HashMap::new(),
        names: 0,
        dirs: 0,
    };
    for &(name, budget) in ROOTS {
        let host = Path::new("/").join(name);
        let Ok(md) = host.symlink_metadata() else {
            continue;
        };
        if md.is_dir() {
            let id = b.new_inode(InodeKind::Directory(Directory::new()));
            b.add(InodeId::ROOT, name.as_bytes(), id, false);
            b.scan(id, &host, budget);
        } else {
            let id = b.new_inode(InodeKind::Symlink(b"target".as_slice().into()));
            b.add(InodeId::ROOT, name.as_bytes(), id, false);
        }
    }
    let extra = EXTRA.iter().map(|p| (p.to_string(), FileType::Regular));
    for (path, ft) in extra.chain(exact_spec_paths()) {
        let Some((parent, name)) = path.rsplit_once('/') else {
            continue;
        };
        let Some(dir) = b.ensure_dir(parent.as_bytes()) else {
            continue;
        };
        let exists =
            b.fs.directory(dir)
                .unwrap()
                .entries()
                .iter()
                .any(|e| &*e.name == name.as_bytes());
        if exists || name.is_empty() {
            continue;
        }
        let kind = match ft {
            FileType::Directory => InodeKind::Directory(Directory::new()),
            FileType::Symlink => InodeKind::Symlink(b"target".as_slice().into()),
            FileType::Fifo => InodeKind::Fifo,
            FileType::Socket => InodeKind::Socket,
            FileType::BlockDevice => InodeKind::BlockDevice(0x0801),
            FileType::CharDevice => InodeKind::CharDevice(0x0103),
            FileType::Regular => InodeKind::Regular(RegularFile::Inline(Box::default())),
        };
        let id = b.new_inode(kind);
        b.add(dir, name.as_bytes(), id, false);
    }
    let mut fs = b.fs;
    fs.sort_directories();
    fs.normalize_hardlink_primaries();
    fs.validate().unwrap();
    fs
}

/// Every path of `fs` (the root too) with its type and label.
fn labels(fs: &FileSystem) -> Vec<(Vec<u8>, FileType, Option<String>)> {
    let label = |id: InodeId| {
        fs.inode(id)
            .stat
            .xattrs
            .get(XATTR_NAME)
            .map(|v| String::from_utf8(v.to_vec()).unwrap())
    };
    let mut out = vec![(b"/".to_vec(), FileType::Directory, label(InodeId::ROOT))];
    fs.walk(|path, entry| {
        let ft = fs.inode(entry.inode).kind.file_type();
        out.push((path.to_vec(), ft, label(entry.inode)));
    });
    out
}

fn mode_name(ft: FileType) -> &'static str {
    match ft {
        FileType::Regular => "file",
        FileType::Directory => "dir",
        FileType::Symlink => "lnk",
        FileType::CharDevice => "chr",
        FileType::BlockDevice => "blk",
        // matchpathcon looks at the first letter only: "fifo" would be a file.
        FileType::Fifo => "pipe",
        FileType::Socket => "sock",
    }
}

/// `matchpathcon -N -m TYPE` for every (path, type): the context, `None`
/// for `<<none>>`. Batches of 2 000 paths, two processes at a time.
fn matchpathcon(paths: &[(&[u8], FileType)]) -> Vec<Option<String>> {
    let mut by_type: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, (_, ft)) in paths.iter().enumerate() {
        by_type.entry(mode_name(*ft)).or_default().push(i);
    }
    let batches: Vec<(&str, &[usize])> = by_type
        .iter()
        .flat_map(|(mode, idx)| idx.chunks(2000).map(move |c| (*mode, c)))
        .collect();
    let results = Mutex::new(vec![None; paths.len()]);
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while let Some(&(mode, batch)) = batches.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let mut cmd = Command::new("matchpathcon");
                    cmd.args(["-N", "-m", mode]);
                    for &i in batch {
                        cmd.arg(OsStr::from_bytes(paths[i].0));
                    }
                    let out = cmd.output().unwrap();
                    assert!(
                        out.status.success(),
                        "{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    let lines: Vec<&[u8]> = out
                        .stdout
                        .split(|&b| b == b'\n')
                        .filter(|l| !l.is_empty())
                        .collect();
                    assert_eq!(
                        lines.len(),
                        batch.len(),
                        "{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    let mut results = results.lock().unwrap();
                    for (&i, line) in batch.iter().zip(lines) {
                        let path = paths[i].0;
                        let context = line
                            .strip_prefix(path)
                            .and_then(|l| l.strip_prefix(b"\t"))
                            .unwrap_or_else(|| {
                                panic!("unexpected line {}", String::from_utf8_lossy(line))
                            });
                        let context = String::from_utf8(context.to_vec()).unwrap();
                        results[i] = Some((context != "<<none>>").then_some(context));
                    }
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|r| r.expect("no matchpathcon answer"))
        .collect()
}

/// The path composefs-rs looks up for `path`: aliases applied while walking.
fn composefs_lookup_path(policy: &Policy, path: &[u8]) -> Vec<u8> {
    let mut cur = PathBuf::from("/");
    for name in path.split(|&b| b == b'/').filter(|n| !n.is_empty()) {
        cur.push(OsStr::from_bytes(name));
        if let Some(original) = policy.alias(cur.as_os_str().as_bytes()) {
            cur = PathBuf::from(OsStr::from_bytes(original));
        }
    }
    cur.into_os_string().into_vec()
}

fn read_host(path: &[u8], _: &ExternalFile) -> Result<Option<Vec<u8>>, SelinuxError> {
    dir_reader(Path::new("/"))(path)
}

#[test]
fn labels_agree_with_matchpathcon() {
    if !available() {
        return;
    }
    let t = Instant::now();
    let tree = host_tree();
    let names = tree
        .inodes()
        .iter()
        .filter_map(|i| i.as_directory())
        .map(Directory::len)
        .sum::<usize>();
    eprintln!(
        "selinux_matchpathcon: tree of {names} names, {} inodes built in {:.2?}",
        tree.len(),
        t.elapsed()
    );
    assert!(names >= 50_000, "only {names} names on this host");

    let mut results = Vec::new();
    for order in [LookupOrder::ComposefsRs, LookupOrder::Libselinux] {
        let mut fs = tree.clone();
        let t = Instant::now();
        let outcome = label_with(&mut fs, &mut read_host, order).unwrap();
        let elapsed = t.elapsed();
        let Outcome::Labelled { policy_type, stats } = &outcome else {
            panic!("{outcome:?}");
        };
        assert_eq!(policy_type, "default");
        eprintln!(
            "selinux_matchpathcon: {order:?}: labelled in {elapsed:.2?} (policy load included): {stats:?}"
        );
        assert!(elapsed.as_secs() < 30, "labelling took {elapsed:?}");
        fs.validate().unwrap();
        results.push(labels(&fs));
    }
    let (ours, libsel) = (&results[0], &results[1]);
    assert_eq!(ours.len(), libsel.len());

    let queries: Vec<(&[u8], FileType)> =
        ours.iter().map(|(p, ft, _)| (p.as_slice(), *ft)).collect();
    let t = Instant::now();
    let reference = matchpathcon(&queries);
    eprintln!(
        "selinux_matchpathcon: matchpathcon answered {} lookups in {:.2?}",
        reference.len(),
        t.elapsed()
    );

    let mut read = dir_reader(Path::new("/"));
    let mut cfs = Policy::load(&mut read, LookupOrder::ComposefsRs)
        .unwrap()
        .unwrap();
    let mut lib = Policy::load(&mut read, LookupOrder::Libselinux)
        .unwrap()
        .unwrap();
    let mut by_type: HashMap<FileType, usize> = HashMap::new();
    for (i, (path, ft, label)) in ours.iter().enumerate() {
        *by_type.entry(*ft).or_default() += 1;
        assert_eq!(&libsel[i].0, path);
        // The walk's labels are the lookups of the aliased paths.
        let lookup = composefs_lookup_path(&cfs, path);
        assert_eq!(cfs.lookup(&lookup, *ft).unwrap(), label.as_deref());
    }
    // The tree has every file type.
    assert_eq!(by_type.len(), 7, "{by_type:?}");
    judge(
        "tree",
        &queries,
        &ours.iter().map(|x| x.2.clone()).collect::<Vec<_>>(),
        &libsel.iter().map(|x| x.2.clone()).collect::<Vec<_>>(),
        &reference,
        &mut cfs,
        &mut lib,
    );
    eprintln!("selinux_matchpathcon: tree paths by type: {by_type:?}");

    // Every exact-path spec as each of the seven types: where the orders can differ.
    let types = [
        FileType::Regular,
        FileType::Directory,
        FileType::Symlink,
        FileType::CharDevice,
        FileType::BlockDevice,
        FileType::Fifo,
        FileType::Socket,
    ];
    let exact = exact_spec_paths();
    let queries: Vec<(&[u8], FileType)> = exact
        .iter()
        .flat_map(|(p, _)| types.iter().map(move |&ft| (p.as_bytes(), ft)))
        .collect();
    let reference = matchpathcon(&queries);
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for &(path, ft) in &queries {
        let lookup = composefs_lookup_path(&cfs, path);
        ours.push(cfs.lookup(&lookup, ft).unwrap().map(str::to_owned));
        theirs.push(lib.lookup(path, ft).unwrap().map(str::to_owned));
    }
    judge(
        "exact", &queries, &ours, &theirs, &reference, &mut cfs, &mut lib,
    );
}

/// Compares both orders' labels with matchpathcon's, prints every
/// difference, and fails on any libselinux-order difference or any
/// composefs-rs-order difference not due to libselinux's exact-path rule.
fn judge(
    what: &str,
    queries: &[(&[u8], FileType)],
    ours: &[Option<String>],
    lib_labels: &[Option<String>],
    reference: &[Option<String>],
    cfs: &mut Policy,
    lib: &mut Policy,
) {
    let describe = |s: Option<cfs_deploy::selinux::SpecRef<'_>>| match s {
        Some(s) => format!(
            "{}:{} {:?}",
            s.file.rsplit('/').next().unwrap_or_default(),
            s.line,
            s.regex
        ),
        None => "no spec".to_owned(),
    };
    let (mut lib_wrong, mut explained, mut unexplained) = (Vec::new(), 0, Vec::new());
    for (i, &(path, ft)) in queries.iter().enumerate() {
        let want = &reference[i];
        let show = String::from_utf8_lossy(path);
        if lib_labels[i] != *want {
            lib_wrong.push(format!(
                "{show} ({}): libselinux order {:?}, matchpathcon {want:?}",
                mode_name(ft),
                lib_labels[i]
            ));
        }
        if ours[i] == *want {
            continue;
        }
        let our_spec = describe(
            cfs.matching_spec(&composefs_lookup_path(cfs, path), ft)
                .unwrap(),
        );
        let their = lib.matching_spec(path, ft).unwrap();
        let exact_wins = their.is_some_and(|s| {
            !s.regex
                .contains(['.', '^', '$', '?', '*', '+', '|', '[', '(', '{'])
        });
        let line = format!(
            "{show} ({}): composefs-rs {:?} from {our_spec}; matchpathcon {want:?} from {}",
            mode_name(ft),
            ours[i],
            describe(their)
        );
        eprintln!("selinux_matchpathcon: {what}: differs: {line}");
        if exact_wins && lib_labels[i] == *want {
            explained += 1;
        } else {
            unexplained.push(line);
        }
    }
    eprintln!(
        "selinux_matchpathcon: {what}: compared {} lookups with matchpathcon; composefs-rs order differs on \
         {explained} (each: libselinux's exact-path spec beats a later pattern); libselinux order differs on {}",
        queries.len(),
        lib_wrong.len()
    );
    assert!(
        lib_wrong.is_empty(),
        "libselinux order disagrees with matchpathcon:\n{}",
        lib_wrong.join("\n")
    );
    assert!(
        unexplained.is_empty(),
        "unexplained differences:\n{}",
        unexplained.join("\n")
    );
}
