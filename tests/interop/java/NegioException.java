// An independent peer for the negio wire protocol, written from docs/PROTOCOL.md only.
// A fatal (or, for LEVEL and MSG_SIZE, local) error, named after the NEGIO_ERR_* codes of the
// document. The names are local diagnostics; they never go on the wire (PROTOCOL.md section 2).

final class NegioException extends Exception {
    private static final long serialVersionUID = 1L;

    final String code;   // e.g. "NEGIO_ERR_INTEGRITY"

    NegioException(String code, String detail) {
        super(detail);
        this.code = code;
    }

    NegioException(String code, String detail, Throwable cause) {
        super(detail, cause);
        this.code = code;
    }

    static NegioException protocol(String detail) {
        return new NegioException("NEGIO_ERR_PROTOCOL", detail);
    }

    static NegioException integrity(String detail) {
        return new NegioException("NEGIO_ERR_INTEGRITY", detail);
    }

    @Override
    public String toString() {
        return code + ": " + getMessage();
    }
}
