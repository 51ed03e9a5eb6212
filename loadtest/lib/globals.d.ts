// k6 provides console as a global; @types/k6 does not declare it, and lib "dom" would declare far more
// than k6 has (fetch, window...), so the scenarios get exactly this.
declare var console: {
    log(...data: unknown[]): void;
    info(...data: unknown[]): void;
    debug(...data: unknown[]): void;
    warn(...data: unknown[]): void;
    error(...data: unknown[]): void;
};
