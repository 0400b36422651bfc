//! The Redis engine (several nodes): see the engine module header.
