/*
 * server — one sse-fcgi process: the listen socket, FastCGI connections from request to
 * close, event streams, heartbeats, the publish and stats routes, and shutdown.
 *
 * Everything runs in the caller's event loop; nothing here blocks on a peer.
 */
#ifndef SSE_SERVER_H
#define SSE_SERVER_H

struct ev_loop;
struct conf;
struct server;

/*
 * Takes listen_fd (a listening socket; made non-blocking here) and the stream ceiling
 * computed from the descriptor limit. conf and loop are borrowed and outlive the server.
 * NULL on failure, logged; listen_fd is then still the caller's to close.
 */
struct server *server_new(struct ev_loop *loop, const struct conf *conf, int listen_fd,
    int stream_ceiling);

/*
 * Stops accepting, sends every stream a jittered retry: and a clean end, and stops the
 * loop once all are gone or grace_ms has passed.
 */
void server_shutdown(struct server *srv, unsigned grace_ms);

/*
 * The conf the server borrows was changed in place (SIGHUP): take the new limits and
 * heartbeat. Streams already open stay, even above a lowered limit.
 */
void server_reconfigure(struct server *srv, int stream_ceiling);

/* Closes every connection and the listen socket; accepts NULL. */
void server_free(struct server *srv);

#endif
