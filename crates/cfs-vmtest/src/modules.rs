//! Kernel modules for the initramfs: the dependency closure of the modules
//! a guest needs, in load order, read from `modules.dep` (as written by
//! `depmod`: `kernel/fs/ext4/ext4.ko.xz: kernel/lib/crc16.ko.xz …`, every
//! transitive dependency listed), and decompressed for busybox `insmod`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// One module file to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// Its name (`ext4`, `9pnet_virtio`), as `insmod` reports it.
    pub name: String,
    /// Path relative to `lib/modules/<release>/`.
    pub rel_path: String,
}

/// A module's name from its path: the file name without `.ko[.xz|.zst|.gz]`,
/// `-` normalised to `_` as the kernel does.
pub fn module_name(rel_path: &str) -> String {
    let file = rel_path.rsplit('/').next().unwrap_or(rel_path);
    let stem = file
        .strip_suffix(".xz")
        .or_else(|| file.strip_suffix(".zst"))
        .or_else(|| file.strip_suffix(".gz"))
        .unwrap_or(file);
    stem.strip_suffix(".ko").unwrap_or(stem).replace('-', "_")
}

/// Parsed `modules.dep`: name → (path, dependency paths).
#[derive(Debug, Default)]
pub struct DepTable {
    entries: HashMap<String, (String, Vec<String>)>,
}

impl DepTable {
    /// Parses the text of a `modules.dep`.
    pub fn parse(text: &str) -> Result<DepTable> {
        let mut entries = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let Some((module, deps)) = line.split_once(':') else {
                bail!("modules.dep line {}: no ':' in {line:?}", n + 1);
            };
            let deps = deps.split_whitespace().map(str::to_owned).collect();
            entries.insert(module_name(module), (module.to_owned(), deps));
        }
        Ok(DepTable { entries })
    }

    /// Reads `modules_dir/modules.dep`.
    pub fn load(modules_dir: &Path) -> Result<DepTable> {
        let path = modules_dir.join("modules.dep");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text)
    }

    /// `wanted` and everything they depend on, each after its dependencies,
    /// in the order first needed. Names the kernel has built in (absent from
    /// `modules.dep`) are an error: the caller should not list them.
    pub fn closure(&self, wanted: &[&str]) -> Result<Vec<Module>> {
        let mut order = Vec::new();
        let mut done = HashSet::new();
        for w in wanted {
            self.visit(&w.replace('-', "_"), &mut done, &mut Vec::new(), &mut order)?;
        }
        Ok(order)
    }

    fn visit(
        &self,
        name: &str,
        done: &mut HashSet<String>,
        stack: &mut Vec<String>,
        order: &mut Vec<Module>,
    ) -> Result<()> {
        if done.contains(name) {
            return Ok(());
        }
        if stack.iter().any(|s| s == name) {
            bail!("modules.dep: dependency cycle through {name} ({stack:?})");
        }
        let (path, deps) = self
            .entries
            .get(name)
            .with_context(|| format!("module {name} is not in modules.dep"))?;
        stack.push(name.to_owned());
        for d in deps {
            self.visit(&module_name(d), done, stack, order)?;
        }
        stack.pop();
        done.insert(name.to_owned());
        order.push(Module {
            name: name.to_owned(),
            rel_path: path.clone(),
        });
        Ok(())
    }
}

/// The uncompressed bytes of a module file (`.ko`, `.ko.xz`, `.ko.zst`).
pub fn read_module(modules_dir: &Path, module: &Module) -> Result<Vec<u8>> {
    let path: PathBuf = modules_dir.join(&module.rel_path);
    let tool = if module.rel_path.ends_with(".xz") {
        Some("xz")
    } else if module.rel_path.ends_with(".zst") {
        Some("zstd")
    } else {
        None
    };
    match tool {
        None => std::fs::read(&path).with_context(|| format!("reading {}", path.display())),
        Some(tool) => {
            let out = Command::new(tool)
                .arg("-dc")
                .arg(&path)
                .output()
                .with_context(|| format!("running {tool} -dc (is it installed?)"))?;
            if !out.status.success() {
                bail!(
                    "{tool} -dc {} failed: {}",
                    path.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            Ok(out.stdout)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "\
kernel/fs/ext4/ext4.ko.xz: kernel/lib/crc16.ko.xz kernel/fs/mbcache.ko.xz kernel/fs/jbd2/jbd2.ko.xz
kernel/lib/crc16.ko.xz:
kernel/fs/mbcache.ko.xz:
kernel/fs/jbd2/jbd2.ko.xz:
kernel/fs/9p/9p.ko.xz: kernel/net/9p/9pnet.ko.xz kernel/fs/netfs/netfs.ko.xz
kernel/net/9p/9pnet_virtio.ko.xz: kernel/net/9p/9pnet.ko.xz kernel/fs/netfs/netfs.ko.xz
kernel/net/9p/9pnet.ko.xz: kernel/fs/netfs/netfs.ko.xz
kernel/fs/netfs/netfs.ko.xz:
kernel/crypto/crc32c-generic.ko.xz:
";

    #[test]
    fn closure_orders_dependencies_first_once() {
        let t = DepTable::parse(DEP).unwrap();
        let names: Vec<String> = t
            .closure(&["crc32c-generic", "ext4", "9pnet_virtio", "9p"])
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(
            names,
            [
                "crc32c_generic",
                "crc16",
                "mbcache",
                "jbd2",
                "ext4",
                "netfs",
                "9pnet",
                "9pnet_virtio",
                "9p"
            ]
        );
    }

    #[test]
    fn unknown_module_and_bad_lines_are_errors() {
        let t = DepTable::parse(DEP).unwrap();
        let e = t.closure(&["vfat"]).unwrap_err().to_string();
        assert!(e.contains("vfat is not in modules.dep"), "{e}");
        assert!(DepTable::parse("kernel/x.ko").is_err());
        let cyclic = DepTable::parse("a.ko: b.ko\nb.ko: a.ko\n").unwrap();
        let e = cyclic.closure(&["a"]).unwrap_err().to_string();
        assert!(e.contains("cycle"), "{e}");
    }

    #[test]
    fn names_from_paths() {
        assert_eq!(
            module_name("kernel/crypto/crc32c-generic.ko.xz"),
            "crc32c_generic"
        );
        assert_eq!(module_name("a/b/loop.ko"), "loop");
        assert_eq!(module_name("x.ko.zst"), "x");
    }
}
