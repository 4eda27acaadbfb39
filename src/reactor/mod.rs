//! One single-threaded io_uring event loop per core.
