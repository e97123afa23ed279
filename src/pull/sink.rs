//! Where the JSON lines go: stdout or an appended file.

use crate::exit::Exit;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot write the output {target}: {source}")]
    Write {
        target: String,
        #[source]
        source: std::io::Error,
    },
}

impl SinkError {
    pub fn exit(&self) -> Exit {
        Exit::OutputFailed
    }
}
