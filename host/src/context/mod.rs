//! The build context directory: confined, read-only access and .containerignore/.dockerignore matching.
