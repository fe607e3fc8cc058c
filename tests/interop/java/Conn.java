// An independent peer for the negio wire protocol, written from docs/PROTOCOL.md only.
// One connection, either role, over blocking socket streams and a JGSS context. Section numbers
// in comments refer to docs/PROTOCOL.md.

import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;

import org.ietf.jgss.GSSContext;
import org.ietf.jgss.GSSCredential;
import org.ietf.jgss.GSSException;
import org.ietf.jgss.GSSManager;
import org.ietf.jgss.GSSName;
import org.ietf.jgss.MessageProp;
import org.ietf.jgss.Oid;

final class Conn {
    // section 3
    static final int VERSION = 2;
    static final int T_HANDSHAKE = 1, T_HANDSHAKE_ERROR = 2, T_POLICY = 3, T_DATA = 4, T_CLOSE = 5;
    static final int L_NONE = 0, L_SIGN = 1, L_SEAL = 2;
    static final int F_MORE = 0x01;

    static final Oid KRB5 = oid("1.2.840.113554.1.2.2");
    static final Oid SPNEGO = oid("1.3.6.1.5.5.2");
    // section 7.1: accepted as Kerberos
    static final Oid KRB5_OLD = oid("1.3.5.1.5.2");
    static final Oid KRB5_MS = oid("1.2.840.48018.1.2.2");
    static final Oid NTLM = oid("1.3.6.1.4.1.311.2.2.10");

    static Oid oid(String s) {
        try {
            return new Oid(s);
        } catch (GSSException e) {
            throw new IllegalArgumentException(s, e);
        }
    }

    static String levelName(int level) {
        switch (level) {
            case L_NONE: return "none";
            case L_SIGN: return "sign";
            case L_SEAL: return "seal";
            default: return "level" + level;
        }
    }

    static int parseLevel(String s) {
        switch (s) {
            case "none": return L_NONE;
            case "sign": return L_SIGN;
            case "seal": return L_SEAL;
            default: throw new IllegalArgumentException("unknown level " + s);
        }
    }

    /** One frame as read from the stream: the clear header and the body. */
    static final class Frame {
        final int version, type, level, flags;
        final byte[] header, body;

        Frame(byte[] h, byte[] body) {
            this.header = h;
            this.version = h[0] & 0xff;
            this.type = h[1] & 0xff;
            this.level = h[2] & 0xff;
            this.flags = h[3] & 0xff;
            this.body = body;
        }

        byte[] ph() {
            return new byte[] {(byte) version, (byte) type, (byte) level, (byte) flags};
        }
    }

    /** What readEvent returns after establishment: a whole message, or the peer's CLOSE. */
    static final class Event {
        final boolean close;
        final int level;        // message level
        final byte[] data;      // message bytes
        final long status;      // close status; -1: the stream ended after our own CLOSE
        final String reason;    // close reason

        Event(int level, byte[] data) {
            this.close = false;
            this.level = level;
            this.data = data;
            this.status = 0;
            this.reason = null;
        }

        Event(long status, String reason) {
            this.close = true;
            this.level = -1;
            this.data = null;
            this.status = status;
            this.reason = reason;
        }
    }

    // configuration
    final boolean client;
    int minLevel = L_SIGN;          // own minimum on DATA
    int defaultLevel = L_SEAL;      // own default level
    /** Section 4.3: SHA-256 of every HANDSHAKE frame, header and body, in both directions. */
    private final MessageDigest transcript = sha256();
    long maxFrame = 1048576;        // announced, enforced on received POLICY/DATA/CLOSE
    long maxMessage = 16777216;     // announced, enforced on received messages
    int maxToken = 65536;
    int maxRounds = 8;
    boolean allowKerberos = true;   // the allowed set (section 7.1); NTLM: JGSS has none
    boolean requestMutual = true;
    /**
     * Whether an end of stream after this side's own CLOSE, without the peer's CLOSE, is a
     * truncation (sections 6.6 and 4.5 read strictly) or the end of a clean close.
     */
    boolean strictClose;
    /** Test hooks: POLICY and CLOSE may be sent at sign or seal (sections 4.3, 4.5). */
    int policyLevel = L_SIGN;
    int closeLevel = L_SIGN;
    /** Test hook: payload bytes per DATA frame; 0 is the reference size, max_frame - 1024 - 4. */
    int fragment;

    // state (section 6.1)
    final Socket sock;
    final InputStream in;
    final OutputStream out;
    GSSContext ctx;
    boolean complete, peerPolicy, peerClosed, sentClose, failed;
    int roundsReceived;
    int peerMin = -1, peerDefault = -1;
    long peerMaxFrame = -1, peerMaxMessage = -1;

    // reassembly (section 4.4)
    private ByteArrayOutputStream frag;
    private int fragLevel = -1;

    // facts
    String peerName, mechName;
    boolean negotiated, mutual;

    /** Frames sent and received, for the optional trace (type, level, flags, length). */
    final StringBuilder trace = new StringBuilder();
    boolean tracing;

    Conn(Socket sock, boolean client) throws IOException {
        this.sock = sock;
        this.client = client;
        this.in = sock.getInputStream();
        this.out = sock.getOutputStream();
    }

    boolean established() {
        return complete && peerPolicy;
    }

    // ---------------------------------------------------------------- frames (section 3)

    private static void putU32(byte[] b, int off, long v) {
        b[off] = (byte) (v >>> 24);
        b[off + 1] = (byte) (v >>> 16);
        b[off + 2] = (byte) (v >>> 8);
        b[off + 3] = (byte) v;
    }

    static long u32(byte[] b, int off) {
        return ((b[off] & 0xffL) << 24) | ((b[off + 1] & 0xffL) << 16) | ((b[off + 2] & 0xffL) << 8)
                | (b[off + 3] & 0xffL);
    }

    static byte[] concat(byte[] a, byte[] b, int boff, int blen) {
        byte[] r = new byte[a.length + blen];
        System.arraycopy(a, 0, r, 0, a.length);
        System.arraycopy(b, boff, r, a.length, blen);
        return r;
    }

    /** Reads exactly n bytes; returns null on an end of stream before the first byte if allowEof. */
    private byte[] readExact(int n, boolean allowEofAtStart) throws IOException, NegioException {
        byte[] b = new byte[n];
        int got = 0;
        while (got < n) {
            int r;
            try {
                r = in.read(b, got, n - got);
            } catch (java.net.SocketException e) {
                // a reset is an end of stream without a verified CLOSE, too
                r = -1;
            }
            if (r < 0) {
                if (got == 0 && allowEofAtStart)
                    return null;
                throw new NegioException("NEGIO_ERR_TRUNCATED",
                        "the stream ended inside a frame (" + got + " of " + n + " bytes)");
            }
            got += r;
        }
        return b;
    }

    /** Section 3: reads one frame, running the header checks before reading the body. */
    Frame readFrame() throws IOException, NegioException {
        byte[] h = readExact(8, true);
        if (h == null)
            return null;
        int version = h[0] & 0xff, type = h[1] & 0xff, level = h[2] & 0xff, flags = h[3] & 0xff;
        if (version != VERSION)
            throw NegioException.protocol("unsupported protocol version");
        if (type < T_HANDSHAKE || type > T_CLOSE)
            throw NegioException.protocol("unknown frame type");
        if (level > L_SEAL)
            throw NegioException.protocol("unknown protection level");
        if ((type == T_HANDSHAKE || type == T_HANDSHAKE_ERROR) && level != L_NONE)
            throw NegioException.protocol("handshake frame at level " + levelName(level));
        if ((type == T_POLICY || type == T_CLOSE) && level == L_NONE)
            throw NegioException.protocol("policy or close frame at level none");
        if ((type == T_DATA && (flags & ~F_MORE) != 0) || (type != T_DATA && flags != 0))
            throw NegioException.protocol("reserved flag bits set");
        long len = u32(h, 4);
        long limit;
        switch (type) {
            case T_HANDSHAKE: limit = maxToken; break;
            case T_HANDSHAKE_ERROR: limit = maxToken + 4L + 256; break;
            case T_POLICY: limit = 4 + 1024 + 48; break;
            case T_CLOSE: limit = 4 + 1024 + 4 + 256; break;
            default: limit = maxFrame; break;
        }
        if (len > limit)
            throw new NegioException("NEGIO_ERR_TOO_LARGE",
                    "frame body of " + len + " bytes, the limit is " + limit);
        // sections 3.5 and 6.3: a frame the state does not allow is refused on its header
        if (type == T_DATA && !established())
            throw NegioException.protocol("data frame before establishment");
        if ((type == T_POLICY || type == T_CLOSE) && !complete)
            throw NegioException.protocol("POLICY or CLOSE before this side's context is complete");
        if (type == T_HANDSHAKE && complete)
            throw NegioException.protocol("HANDSHAKE after this side's context is complete");
        byte[] body = readExact((int) len, false);
        if (tracing)
            trace.append("<- type ").append(type).append(" level ").append(level).append(" flags ")
                    .append(flags).append(" length ").append(len).append('\n');
        return new Frame(h, body);
    }

    private void writeFrame(byte[] ph, byte[] body) throws IOException {
        byte[] f = new byte[8 + body.length];
        System.arraycopy(ph, 0, f, 0, 4);
        putU32(f, 4, body.length);
        System.arraycopy(body, 0, f, 8, body.length);
        if (ph[1] == T_HANDSHAKE)
            transcript.update(f);
        out.write(f);
        out.flush();
        if (tracing)
            trace.append("-> type ").append(ph[1]).append(" level ").append(ph[2]).append(" flags ")
                    .append(ph[3]).append(" length ").append(body.length).append('\n');
    }

    /** Writes raw bytes (the tamper tests build their own frames). */
    void writeRaw(byte[] frame) throws IOException {
        out.write(frame);
        out.flush();
    }

    static byte[] ph(int type, int level, int flags) {
        return new byte[] {(byte) VERSION, (byte) type, (byte) level, (byte) flags};
    }

    // ------------------------------------------------------- protection (section 5)

    /** Section 5: the body of a frame with header PH at ph[2]'s level, carrying payload P. */
    byte[] protect(byte[] ph, byte[] p, int off, int len) throws NegioException {
        int level = ph[2];
        if (level == L_NONE)
            return Arrays.copyOfRange(p, off, off + len);
        byte[] input = concat(ph, p, off, len);
        try {
            if (level == L_SIGN) {
                byte[] mic = ctx.getMIC(input, 0, input.length, new MessageProp(0, false));
                byte[] body = new byte[4 + mic.length + len];
                putU32(body, 0, mic.length);
                System.arraycopy(mic, 0, body, 4, mic.length);
                System.arraycopy(p, off, body, 4 + mic.length, len);
                return body;
            }
            MessageProp mp = new MessageProp(0, true);
            byte[] tok = ctx.wrap(input, 0, input.length, mp);
            if (!mp.getPrivacy())
                throw NegioException.integrity("GSS_Wrap did not provide confidentiality");
            return tok;
        } catch (GSSException e) {
            throw new NegioException("NEGIO_ERR_INTEGRITY", "GetMIC/Wrap failed: " + e, e);
        }
    }

    /** Writes a protected frame. */
    void sendProtected(int type, int level, int flags, byte[] p, int off, int len)
            throws IOException, NegioException {
        byte[] ph = ph(type, level, flags);
        writeFrame(ph, protect(ph, p, off, len));
    }

    private static void requireNoSupplementary(MessageProp mp) throws NegioException {
        if (mp.isDuplicateToken() || mp.isOldToken() || mp.isUnseqToken() || mp.isGapToken())
            throw NegioException.integrity("per-message token with a supplementary status"
                    + " (duplicate " + mp.isDuplicateToken() + ", old " + mp.isOldToken()
                    + ", unseq " + mp.isUnseqToken() + ", gap " + mp.isGapToken() + ")");
    }

    /** Section 5.2 and 5.3: verifies or unwraps a received POLICY, DATA or CLOSE; returns P. */
    byte[] unprotect(Frame f) throws NegioException {
        byte[] ph = f.ph();
        byte[] body = f.body;
        if (f.level == L_NONE)
            return body;
        if (f.level == L_SIGN) {
            if (body.length < 4)
                throw NegioException.integrity("signed frame with a malformed MIC length");
            long micLen = u32(body, 0);
            if (micLen > body.length - 4)
                throw NegioException.integrity("signed frame with a malformed MIC length");
            int pOff = 4 + (int) micLen;
            byte[] input = concat(ph, body, pOff, body.length - pOff);
            MessageProp mp = new MessageProp(0, false);
            try {
                ctx.verifyMIC(body, 4, (int) micLen, input, 0, input.length, mp);
            } catch (GSSException e) {
                throw new NegioException("NEGIO_ERR_INTEGRITY", "VerifyMIC failed: " + e, e);
            }
            requireNoSupplementary(mp);
            return Arrays.copyOfRange(body, pOff, body.length);
        }
        MessageProp mp = new MessageProp(0, true);
        byte[] plain;
        try {
            plain = ctx.unwrap(body, 0, body.length, mp);
        } catch (GSSException e) {
            throw new NegioException("NEGIO_ERR_INTEGRITY", "Unwrap failed: " + e, e);
        }
        requireNoSupplementary(mp);
        if (!mp.getPrivacy())
            throw NegioException.integrity("sealed frame without confidentiality (conf_state 0)");
        if (plain.length < 4 || plain[0] != ph[0] || plain[1] != ph[1] || plain[2] != ph[2]
                || plain[3] != ph[3])
            throw NegioException.integrity("sealed frame header does not match its clear header");
        return Arrays.copyOfRange(plain, 4, plain.length);
    }

    // ------------------------------------------------------------- policy (section 4.3)

    /** The transcript hash, taken once this side's context is complete (section 4.3). */
    private byte[] transcriptHash;

    byte[] policyPayload() {
        byte[] p = new byte[48];
        p[0] = 2;
        p[1] = (byte) minLevel;
        p[2] = (byte) defaultLevel;
        putU32(p, 4, maxFrame);
        putU32(p, 8, maxMessage);
        System.arraycopy(transcriptHash(), 0, p, 16, 32);
        return p;
    }

    private byte[] transcriptHash() {
        if (transcriptHash == null)
            transcriptHash = transcript.digest();
        return transcriptHash;
    }

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private void sendPolicy() throws IOException, NegioException {
        byte[] p = policyPayload();
        sendProtected(T_POLICY, policyLevel, 0, p, 0, p.length);
    }

    private void receivePolicy(Frame f) throws NegioException {
        byte[] p = unprotect(f);
        if (p.length != 48 || p[0] != 2 || p[3] != 0 || u32(p, 12) != 0)
            throw NegioException.protocol("malformed policy frame");
        if (!MessageDigest.isEqual(Arrays.copyOfRange(p, 16, 48), transcriptHash()))
            throw NegioException.integrity("the handshake was altered in transit");
        int min = p[1] & 0xff, dflt = p[2] & 0xff;
        if (min > 2 || dflt > 2)
            throw NegioException.protocol("policy names an unknown level");
        long mf = u32(p, 4);
        if (mf < 4096 || mf > 0x7fffffffL)
            throw NegioException.protocol("policy frame limit out of range");
        if (dflt < minLevel)
            throw new NegioException("NEGIO_ERR_POLICY", "the peer sends at " + levelName(dflt)
                    + " by default, this side requires at least " + levelName(minLevel));
        if (defaultLevel < min)
            throw new NegioException("NEGIO_ERR_POLICY", "this side sends at "
                    + levelName(defaultLevel) + " by default, the peer requires at least "
                    + levelName(min));
        peerMin = min;
        peerDefault = dflt;
        peerMaxFrame = mf;
        peerMaxMessage = u32(p, 8);
        peerPolicy = true;
    }

    // ----------------------------------------------------------- handshake (section 6.2)

    private void sendHandshake(byte[] tok) throws IOException, NegioException {
        if (tok.length > maxToken)
            throw new NegioException("NEGIO_ERR_TOO_LARGE", "own token of " + tok.length + " bytes");
        writeFrame(ph(T_HANDSHAKE, L_NONE, 0), tok);
    }

    /** Section 4.2: best effort, before establishment only. */
    void sendHandshakeError(byte[] token, String reason) {
        byte[] r = reason.getBytes(StandardCharsets.US_ASCII);
        if (r.length > 256)
            r = Arrays.copyOf(r, 256);
        byte[] t = token == null ? new byte[0] : token;
        byte[] body = new byte[4 + t.length + r.length];
        putU32(body, 0, t.length);
        System.arraycopy(t, 0, body, 4, t.length);
        System.arraycopy(r, 0, body, 4 + t.length, r.length);
        try {
            writeFrame(ph(T_HANDSHAKE_ERROR, L_NONE, 0), body);
        } catch (IOException e) {
            // the peer may be gone already
        }
    }

    private static NegioException peerError(Frame f) {
        byte[] b = f.body;
        if (b.length < 4 || u32(b, 0) > b.length - 4)
            return NegioException.protocol("malformed handshake error frame");
        int tl = (int) u32(b, 0);
        StringBuilder r = new StringBuilder();
        for (int i = 4 + tl; i < b.length && r.length() < 256; i++) {
            int c = b[i] & 0xff;
            r.append(c >= 0x20 && c <= 0x7e ? (char) c : '?');
        }
        return new NegioException("NEGIO_ERR_PEER",
                "the peer failed the handshake (token " + tl + " bytes): " + r);
    }

    /**
     * Section 7.1: the mechanism of the client's first token, or null when it is not one.
     * "NTLMSSP\0" is raw NTLM; otherwise 0x60, a DER length, 0x06, an OID length below 128, the OID.
     */
    static Oid firstTokenMech(byte[] t) {
        byte[] ntlm = "NTLMSSP\0".getBytes(StandardCharsets.US_ASCII);
        if (t.length >= 8 && Arrays.equals(Arrays.copyOf(t, 8), ntlm))
            return NTLM;
        int i = 0;
        if (t.length < 2 || (t[i++] & 0xff) != 0x60)
            return null;
        int l = t[i++] & 0xff;
        if (l >= 0x80) {
            int n = l & 0x7f;
            if (n < 1 || n > 4 || i + n > t.length)
                return null;
            i += n;   // the value is not needed to find the OID
        }
        if (i + 2 > t.length || (t[i++] & 0xff) != 0x06)
            return null;
        int ol = t[i++] & 0xff;
        if (ol >= 128 || i + ol > t.length)
            return null;
        byte[] der = new byte[2 + ol];
        der[0] = 0x06;
        der[1] = (byte) ol;
        System.arraycopy(t, i, der, 2, ol);
        try {
            return new Oid(der);
        } catch (GSSException e) {
            return null;
        }
    }

    /** Section 7.2: the checks when this side's context completes. */
    private void checkContext() throws GSSException, NegioException {
        Oid mech = ctx.getMech();
        boolean krb = mech.equals(KRB5) || mech.equals(KRB5_OLD) || mech.equals(KRB5_MS);
        if (!krb || !allowKerberos)
            throw new NegioException("NEGIO_ERR_POLICY", "mechanism " + mech + " is not allowed");
        mechName = "kerberos";
        if (ctx.getAnonymityState())
            throw new NegioException("NEGIO_ERR_POLICY", "anonymous context");
        StringBuilder missing = new StringBuilder();
        if (!ctx.getIntegState())
            missing.append(" INTEG");
        if (!ctx.getConfState())
            missing.append(" CONF");
        // the client requires REPLAY and SEQUENCE; the server requires them for Kerberos
        if (!ctx.getReplayDetState())
            missing.append(" REPLAY");
        if (!ctx.getSequenceDetState())
            missing.append(" SEQUENCE");
        if (client && requestMutual && !ctx.getMutualAuthState())
            missing.append(" MUTUAL");
        if (missing.length() > 0)
            throw new NegioException("NEGIO_ERR_POLICY", "flags not granted:" + missing);
        mutual = ctx.getMutualAuthState();
        peerName = String.valueOf(client ? ctx.getTargName() : ctx.getSrcName());
    }

    private void onComplete() throws IOException, NegioException {
        try {
            checkContext();
        } catch (GSSException e) {
            throw new NegioException("NEGIO_ERR_HANDSHAKE", "context query failed: " + e, e);
        }
        complete = true;
    }

    /**
     * Client side of sections 6.2 and 7.2: Init with no input, send, then loop until established.
     */
    void clientHandshake(GSSManager m, String target, Oid mech) throws IOException, NegioException {
        negotiated = mech.equals(SPNEGO);
        try {
            GSSName name = m.createName(target, GSSName.NT_HOSTBASED_SERVICE);
            ctx = m.createContext(name, mech, null, GSSContext.DEFAULT_LIFETIME);
            ctx.requestMutualAuth(requestMutual);
            ctx.requestReplayDet(true);
            ctx.requestSequenceDet(true);
            ctx.requestConf(true);
            ctx.requestInteg(true);
            ctx.requestCredDeleg(false);
        } catch (GSSException e) {
            // nobody is waiting for us yet: send nothing (section 6.7)
            failed = true;
            throw new NegioException("NEGIO_ERR_CREDENTIALS", "client setup failed: " + e, e);
        }
        try {
            byte[] tok;
            try {
                tok = ctx.initSecContext(new byte[0], 0, 0);
            } catch (GSSException e) {
                // a failed GSS call before establishment: HANDSHAKE_ERROR (section 6.7)
                throw new NegioException("NEGIO_ERR_HANDSHAKE", "first Init failed: " + e, e);
            }
            if (tok == null || tok.length == 0)
                throw new NegioException("NEGIO_ERR_HANDSHAKE", "Init produced no first token");
            boolean done = ctx.isEstablished();
            if (done)
                onComplete();   // Kerberos without mutual authentication: AP-REQ, then POLICY
            sendHandshake(tok);
            if (done)
                sendPolicy();
            loop();
        } catch (NegioException e) {
            fail(e);
            throw e;
        }
    }

    /** Server side: the first token's mechanism check, Accept, then the same loop. */
    void serverHandshake(GSSManager m, GSSCredential cred)
            throws IOException, NegioException {
        try {
            Frame f = readFrame();
            if (f == null)
                throw new NegioException("NEGIO_ERR_TRUNCATED", "the client closed before its first token");
            if (f.type != T_HANDSHAKE) {
                if (f.type == T_HANDSHAKE_ERROR)
                    throw peerError(f);
                throw NegioException.protocol("first frame is not HANDSHAKE (type " + f.type + ")");
            }
            if (f.body.length == 0)
                throw NegioException.protocol("empty handshake token");
            roundsReceived++;
            Oid mech = firstTokenMech(f.body);
            if (mech == null)
                throw new NegioException("NEGIO_ERR_HANDSHAKE", "no recognisable mechanism in the first token");
            boolean krb = mech.equals(KRB5) || mech.equals(KRB5_OLD) || mech.equals(KRB5_MS);
            if (!mech.equals(SPNEGO) && !(krb && allowKerberos))
                throw new NegioException("NEGIO_ERR_HANDSHAKE", "mechanism " + mech + " not allowed");
            negotiated = mech.equals(SPNEGO);
            try {
                ctx = m.createContext(cred);
            } catch (GSSException e) {
                throw new NegioException("NEGIO_ERR_CREDENTIALS", "acceptor setup failed: " + e, e);
            }
            transcript.update(f.header);
            transcript.update(f.body);
            step(f.body);
            loop();
        } catch (NegioException e) {
            fail(e);
            throw e;
        }
    }

    /** One Init or Accept call with a received token; sends its output and, when complete, POLICY. */
    private void step(byte[] in) throws IOException, NegioException {
        byte[] outTok;
        try {
            outTok = client ? ctx.initSecContext(in, 0, in.length) : ctx.acceptSecContext(in, 0, in.length);
        } catch (GSSException e) {
            // JGSS gives no output token together with an error (section 4.2 wants it sent)
            throw new NegioException("NEGIO_ERR_HANDSHAKE", (client ? "Init" : "Accept") + " failed: " + e, e);
        }
        boolean done = ctx.isEstablished();
        if (!done && (outTok == null || outTok.length == 0))
            throw new NegioException("NEGIO_ERR_HANDSHAKE", "CONTINUE_NEEDED with an empty token");
        if (done) {
            onComplete();   // section 6.2 step 4: check, then final token, then POLICY
        }
        if (outTok != null && outTok.length > 0)
            sendHandshake(outTok);
        if (done)
            sendPolicy();
    }

    private void loop() throws IOException, NegioException {
        while (!established()) {
            Frame f = readFrame();
            if (f == null)
                throw new NegioException("NEGIO_ERR_TRUNCATED", "the stream ended during the handshake");
            switch (f.type) {
                case T_HANDSHAKE:
                    if (complete)
                        throw NegioException.protocol("HANDSHAKE after this side's context is complete");
                    if (f.body.length == 0)
                        throw NegioException.protocol("empty handshake token");
                    if (++roundsReceived > maxRounds)
                        throw NegioException.protocol("more than " + maxRounds + " handshake rounds");
                    transcript.update(f.header);
                    transcript.update(f.body);
                    step(f.body);
                    break;
                case T_HANDSHAKE_ERROR:
                    throw peerError(f);
                case T_POLICY:
                    if (!complete)
                        throw NegioException.protocol("POLICY before this side's context is complete");
                    receivePolicy(f);
                    break;
                default:
                    throw NegioException.protocol("frame type " + f.type + " before establishment");
            }
        }
    }

    /** Section 6.7: before establishment a failing side sends HANDSHAKE_ERROR, after it nothing. */
    void fail(NegioException e) {
        if (failed)
            return;
        failed = true;
        boolean send = !established() && !e.code.equals("NEGIO_ERR_PEER")
                && !e.code.equals("NEGIO_ERR_TRUNCATED");
        if (send)
            sendHandshakeError(null, e.getMessage());
        closeQuietly();
    }

    void closeQuietly() {
        try {
            sock.close();
        } catch (IOException e) {
            // nothing to do
        }
    }

    // --------------------------------------------------------------- data (section 4.4)

    /** Sends one message at a level, fragmented to the peer's max_frame. */
    void send(byte[] msg, int level) throws IOException, NegioException {
        if (!established() || sentClose)
            throw NegioException.protocol("send before establishment or after close");
        if (level < peerMin)
            throw new NegioException("NEGIO_ERR_LEVEL", "the peer's minimum is " + levelName(peerMin));
        if (msg.length > peerMaxMessage)
            throw new NegioException("NEGIO_ERR_MSG_SIZE", "the peer accepts at most " + peerMaxMessage);
        int chunk = fragment > 0 ? fragment : (int) (peerMaxFrame - 1024 - 4);
        int off = 0;
        do {
            int n = Math.min(chunk, msg.length - off);
            boolean more = off + n < msg.length;
            sendProtected(T_DATA, level, more ? F_MORE : 0, msg, off, n);
            off += n;
        } while (off < msg.length);
    }

    /** Sends CLOSE (signed) and half-closes the socket. */
    void sendClose(long status, String reason) throws IOException, NegioException {
        byte[] r = reason.getBytes(StandardCharsets.US_ASCII);
        byte[] p = new byte[4 + r.length];
        putU32(p, 0, status);
        System.arraycopy(r, 0, p, 4, r.length);
        sendProtected(T_CLOSE, closeLevel, 0, p, 0, p.length);
        sentClose = true;
        sock.shutdownOutput();
    }

    /**
     * Reads the next message or the peer's CLOSE (section 4.4, 4.5, 6.3, 6.5). A fatal error
     * closes the connection and is thrown.
     */
    Event readEvent() throws IOException, NegioException {
        try {
            for (;;) {
                Frame f = readFrame();
                if (f == null && sentClose && !strictClose) {
                    // the reference peer answers a CLOSE by ending the stream, without its own CLOSE
                    closeQuietly();
                    return new Event(-1L, (String) null);
                }
                if (f == null)
                    throw new NegioException("NEGIO_ERR_TRUNCATED", "the stream ended without a CLOSE");
                switch (f.type) {
                    case T_DATA: {
                        if (f.level < minLevel)
                            throw new NegioException("NEGIO_ERR_DOWNGRADE", "DATA at "
                                    + levelName(f.level) + ", the minimum is " + levelName(minLevel));
                        if (frag != null && f.level != fragLevel)
                            throw NegioException.protocol("protection level changed inside a message");
                        byte[] p = unprotect(f);
                        boolean more = (f.flags & F_MORE) != 0;
                        if (frag == null && !more) {
                            if (p.length > maxMessage)
                                throw new NegioException("NEGIO_ERR_TOO_LARGE", "message of " + p.length);
                            return new Event(f.level, p);
                        }
                        if (frag == null) {
                            frag = new ByteArrayOutputStream();
                            fragLevel = f.level;
                        }
                        if ((long) frag.size() + p.length > maxMessage)
                            throw new NegioException("NEGIO_ERR_TOO_LARGE", "message over " + maxMessage);
                        frag.write(p, 0, p.length);
                        if (!more) {
                            byte[] msg = frag.toByteArray();
                            frag = null;
                            return new Event(fragLevel, msg);
                        }
                        break;
                    }
                    case T_CLOSE: {
                        if (frag != null)
                            throw NegioException.protocol("CLOSE inside a fragmented message");
                        byte[] p = unprotect(f);
                        if (p.length < 4 || p.length > 4 + 256)
                            throw NegioException.protocol("malformed close frame");
                        peerClosed = true;
                        String reason = new String(p, 4, p.length - 4, StandardCharsets.ISO_8859_1);
                        long status = u32(p, 0);
                        if (status != 0)
                            throw new NegioException("NEGIO_ERR_REJECTED",
                                    "rejected by the peer, status " + status + ": " + reason);
                        return new Event(status, reason);
                    }
                    case T_HANDSHAKE_ERROR:
                        throw NegioException.protocol("HANDSHAKE_ERROR after establishment");
                    case T_POLICY:
                        throw NegioException.protocol("second POLICY");
                    default:
                        throw NegioException.protocol("HANDSHAKE after establishment");
                }
            }
        } catch (NegioException e) {
            fail(e);
            throw e;
        }
    }

    /** After a verified CLOSE: the rest of the stream is ignored; waits for its end. */
    void drainToEof() {
        byte[] b = new byte[4096];
        try {
            while (in.read(b) >= 0) {
                // ignored (section 4.5)
            }
        } catch (IOException e) {
            // the end, too
        }
        closeQuietly();
    }
}
