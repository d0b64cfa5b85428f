//! OCI images in a repository (repository.md §12): manifest and config
//! streams, tags under `streams/refs/oci/`, images built from the layers.
