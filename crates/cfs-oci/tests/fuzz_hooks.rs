//! Replays hand-picked inputs through the fuzz targets' code paths (the
//! hooks of `cfs_oci::source::fuzz` and the `merge_tar_entries` body), so
//! the normal test run covers what `fuzz/` fuzzes.

use std::io::Read;

use cfs_core::verity::{Algorithm, Digest, digest_bytes};
use cfs_oci::merge::build_tree;
use cfs_oci::source::fuzz::{
    self, fuzz_archive_index, fuzz_docker_archive_manifest, fuzz_layout_index,
};

/// A ustar header block for `name` with `size` bytes of data.
fn header(name: &str, kind: u8, size: usize, link: &str) -> Vec<u8> {
    fuzz::ustar_header(name, kind, size, link).to_vec()
}

fn member(tar: &mut Vec<u8>, name: &str, kind: u8, link: &str, data: &[u8]) {
    fuzz::tar_member(tar, name, kind, link, data);
}

fn docker_tar() -> Vec<u8> {
    let mut tar = Vec::new();
    member(
        &mut tar,
        "manifest.json",
        b'0',
        "",
        br#"[{"Config":"c.json","RepoTags":["x:1"],"Layers":["l.tar","sub/l"]}]"#,
    );
    member(&mut tar, "c.json", b'0', "", b"{}");
    member(&mut tar, "l.tar", b'0', "", &[0u8; 1024]);
    member(&mut tar, "sub/l", b'2', "../l.tar", &[]);
    tar.extend_from_slice(&[0u8; 1024]);
    tar
}

/// The body of the `merge_tar_entries` fuzz target.
fn merge_tar_entries(data: &[u8]) {
    let mut store = |r: &mut dyn Read, size: u64| -> std::io::Result<Digest> {
        let mut v = Vec::new();
        r.read_to_end(&mut v)?;
        assert_eq!(v.len() as u64, size);
        Ok(digest_bytes(Algorithm::Sha256, &v))
    };
    let _ = build_tree([data], &mut store);
    let _ = build_tree([data, data], &mut store);
}

#[test]
fn layout_index_inputs() {
    let nested = br#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:00","size":1,"platform":{"os":"linux","architecture":"amd64"}}]}"#;
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}"#;
    let tagged = br#"{"manifests":[{"digest":"sha256:ab","size":2,"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}"#;
    let mut inputs: Vec<Vec<u8>> = vec![
        vec![],
        vec![0],
        b"\x00{}".to_vec(),
        b"\x01[]".to_vec(),
        b"\x00{\"manifests\":[{\"digest\":\"x\",\"size\":18446744073709551615}]}".to_vec(),
        b"\x01\xff\xff".to_vec(),
        // Typed manifest/config parsers: wrong types deep in the document,
        // and a registry error envelope.
        b"\x00{\"schemaVersion\":2,\"config\":{},\"layers\":5}".to_vec(),
        b"\x00{\"rootfs\":{\"diff_ids\":[1]},\"config\":{\"Env\":{}}}".to_vec(),
        b"\x00{\"errors\":[{\"code\":\"X\"},{\"message\":\"\\u0000\"}]}".to_vec(),
    ];
    // A nested index that resolves to itself: the depth limit must stop it.
    for selector in 0..16u8 {
        let mut input = vec![selector];
        input.extend_from_slice(nested);
        input.push(0xff);
        input.extend_from_slice(nested);
        inputs.push(input);
        let mut input = vec![selector];
        input.extend_from_slice(tagged);
        input.push(0xff);
        input.extend_from_slice(manifest);
        inputs.push(input);
    }
    for input in &inputs {
        fuzz_layout_index(input);
    }
}

#[test]
fn archive_index_inputs() {
    let docker = docker_tar();
    let mut bad_size = header("a", b'0', 0, "");
    bad_size[124..135].copy_from_slice(b"77777777777");
    let mut huge_pax = header("p", b'x', 0, "");
    huge_pax[124..135].copy_from_slice(b"77777777777");
    let inputs: Vec<Vec<u8>> = vec![
        vec![],
        vec![0; 100],
        vec![0; 1024],
        vec![0xff; 512],
        docker.clone(),
        docker[..700].to_vec(),
        bad_size,
        huge_pax,
        header("L", b'L', 0, ""),
    ];
    for input in &inputs {
        fuzz_archive_index(input);
    }
}

#[test]
fn docker_archive_manifest_inputs() {
    let inputs: [&[u8]; 8] = [
        b"",
        b"\x00",
        b"\x00[]",
        b"\x00{}",
        b"\x00[{\"Config\":\"config.json\",\"Layers\":[\"layer.tar\",\"sub/layer\",\"hard\",\"layer.tar.gz\",\"layer.zst\"]}]",
        b"\x01[{\"Config\":\"config.json\",\"RepoTags\":[\"busybox\"],\"Layers\":[]}]",
        b"\x02[{\"Config\":\"loop\",\"Layers\":[]}]",
        b"\x00[{\"Config\":\"/../config.json\",\"Layers\":[\"missing\"]},{\"Config\":\"x\",\"Layers\":[]}]",
    ];
    for input in inputs {
        fuzz_docker_archive_manifest(input);
    }
}

#[test]
fn merge_tar_entries_inputs() {
    let mut usr = Vec::new();
    member(&mut usr, "usr/", b'5', "", &[]);
    member(&mut usr, "usr/big", b'0', "", &[1u8; 200]);
    member(&mut usr, "usr/.wh..wh..opq", b'0', "", &[]);
    member(&mut usr, "usr/h", b'1', "usr/big", &[]);
    member(&mut usr, "usr/.wh.big", b'0', "", &[]);
    member(&mut usr, "usr/../x", b'0', "", &[]);
    usr.extend_from_slice(&[0u8; 1024]);
    let inputs: Vec<Vec<u8>> = vec![
        vec![],
        vec![0; 1024],
        vec![0xff; 512],
        usr.clone(),
        usr[..600].to_vec(),
        docker_tar(),
    ];
    for input in &inputs {
        merge_tar_entries(input);
    }
}
