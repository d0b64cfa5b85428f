//! Pulling an image: source → verified blobs → layer streams, config and
//! manifest streams, EROFS image, tag.
