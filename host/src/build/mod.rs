//! The build executor: runs a frontend plan into an image (stage graph, cache keys, steps, commit).
