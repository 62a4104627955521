mod auth;
mod decisions;
mod paging;
mod peer;
mod sse;
