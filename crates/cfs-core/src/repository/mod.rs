//! The composefs repository (work in progress; see `../shared/spec/repository.md`).
