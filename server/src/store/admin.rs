//! Admin API key endpoints (filled in when the server's admin router lands).
