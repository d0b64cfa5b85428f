//! Split streams (work in progress; see `../shared/spec/repository.md` §11).
