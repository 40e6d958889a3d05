//! Image references and transport strings, normalised as containers/image does.
