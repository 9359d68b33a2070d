// Which lines of the server's stderr the output channel leaves out. No `vscode` import.

/**
 * A log record the server writes to stderr ("2026-11-25 13:24:57,123 INFO zero_latency: …",
 * cli.py's format) at a level it also sends as window/logMessage (INFO and above of the
 * `zero_latency` loggers: lsp.py's CLIENT_LOG). vscode-languageclient writes both to the
 * output channel, so the stderr copy is dropped. DEBUG lines (`zl -v serve`), other loggers,
 * tracebacks and anything else the process prints are kept.
 */
export function isMirroredLogLine(line: string): boolean {
  return MIRRORED.test(line);
}

const MIRRORED = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?:INFO|WARNING|ERROR|CRITICAL) zero_latency(?:\.[\w.]+)?: /;
