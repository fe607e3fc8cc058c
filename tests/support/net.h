/* Test support: loopback TCP for the tests that play a peer by hand, and what the kernel shows
 * of a connection's state (/proc/net/tcp), so that a test can wait for a peer to have read what
 * it was sent instead of sleeping. IPv4 on 127.0.0.1 only. */
#ifndef NEGIO_TEST_NET_H
#define NEGIO_TEST_NET_H

#include <stddef.h>
#include <stdint.h>

/* A blocking TCP socket listening on 127.0.0.1 on a port the kernel chose (*PORT), close-on-exec;
 * -1 on failure (errno set). */
int test_tcp_listen(uint16_t *port);
/* A blocking TCP connection to 127.0.0.1:PORT, close-on-exec; -1 on failure (errno set). On
 * loopback it completes, or is refused, at once: the kernel answers for a listener whose owner
 * has not accepted yet. */
int test_tcp_connect(uint16_t port);
/* A socket listening on 127.0.0.1 (*PORT) that answers no SYN, as a host that drops them (down,
 * or behind a firewall): its backlog of one is full with a connection it never accepts, held in
 * FILL (up to TEST_SILENT_FILL sockets, -1 for none; close them with the listener). A connect to
 * it stays in progress for the kernel's SYN retries. -1 on failure, or if the kernel still
 * answered once the backlog was full. */
#define TEST_SILENT_FILL 4
int test_tcp_silent_listen(uint16_t *port, int fill[TEST_SILENT_FILL]);
/* Closes what test_tcp_silent_listen made (a negative FD: nothing). */
void test_tcp_silent_close(int fd, int fill[TEST_SILENT_FILL]);
/* A port of 127.0.0.1 that nothing listened on when it was picked, for a program in another
 * process to listen on; 0 if none could be had. */
uint16_t test_tcp_free_port(void);

/* Writes all N bytes of P to FD (a socket, without SIGPIPE, or a pipe), through EINTR; 0, or -1
 * on failure. */
int test_write_all(int fd, const void *p, size_t n);
/* Reads exactly N bytes from FD into P within MS milliseconds; 0, or -1 on EOF, error or
 * timeout. */
int test_read_all(int fd, void *p, size_t n, int ms);

/* The bytes the kernel holds unread for the established sockets whose local port is PORT (a
 * server's accepted connections, accepted by its owner or still in its backlog), and how many
 * such sockets there are (*SOCKETS); -1 if /proc/net/tcp cannot be read. */
long test_tcp_unread_at(uint16_t port, int *sockets);
/* How many TCP connections with local port PORT (a server's) are still open: every state but
 * LISTEN, TIME_WAIT and CLOSE, so that a connection one side has closed and the other not yet
 * counts; -1 if /proc/net/tcp cannot be read. */
int test_tcp_open_at(uint16_t port);
/* The bytes the other end of FD, a TCP connection over 127.0.0.1 between two sockets of this
 * machine, has received and not read yet; -1 if that end is not found (closed, or not on this
 * machine). 0 means its owner has read everything FD sent only once test_tcp_unacked(FD) is 0
 * too: bytes that end's TCP has not taken in yet (still in the loopback device's queue, or in
 * the socket's backlog while its owner is inside a system call on it) are not counted here. */
long test_tcp_peer_unread(int fd);
/* The bytes FD has been given to send that the other end has not acknowledged yet (the
 * tx_queue of /proc/net/tcp); -1 if FD is not found. */
long test_tcp_unacked(int fd);

#endif
