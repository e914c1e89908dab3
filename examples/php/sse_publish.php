<?php
/*
 * Publish Server-Sent Events through sse-fcgi from a PHP application.
 *
 * PHP's own stream functions only (no curl, no Composer).  Copy this file
 * next to your code:
 *
 *     require __DIR__ . '/sse_publish.php';
 *
 *     $reply = SseFcgi\publish('doctor-123',
 *         ['type' => 'queue_update', 'nowServing' => 'A-17'], 'queue_update');
 *     // $reply == ['mode' => 'local', 'delivered' => 3, 'fallback' => false]
 *
 * publish() POSTs to /publish/<resource> on the front server (nginx,
 * lighttpd, Apache or Caddy), which lets only trusted addresses publish.  The
 * base URL is $options['base_url'], else the environment variable
 * SSE_PUBLISH_URL, else http://127.0.0.1.  $options['token'] is sse-fcgi's
 * publish_token (sent as a Bearer token) when one is set.  Any answer but
 * 200 throws SseFcgi\PublishError, whose getCode() is the HTTP status (0 when
 * nothing answered).
 *
 * Through Redis instead, the way the seed design's Node peers publish (every
 * sse-fcgi process subscribed to that Redis delivers it; no event id, no
 * history), with phpredis (Debian: php-redis):
 *
 *     $redis = new Redis(); $redis->connect('127.0.0.1', 6379);
 *     SseFcgi\publish_redis($redis, 'doctor-123', ['nowServing' => 'A-17']);
 *
 * subscribe_token() signs an HS256 JSON Web Token granting streams, for an
 * sse-fcgi configured with `jwt { subscribe = true  secret = "..." }`.
 *
 * From a shell: php sse_publish.php RESOURCE DATA [EVENT]
 */

namespace SseFcgi;

class PublishError extends \RuntimeException
{
    /** The reply's body (sse-fcgi says why in it). */
    public string $body;

    public function __construct(int $status, string $body, string $url)
    {
        $this->body = $body;
        parent::__construct(sprintf('publish to %s: %s %s', $url,
            $status ? (string)$status : 'no answer', substr(trim($body), 0, 200)), $status);
    }
}

/* Strings go as they are; anything else as compact JSON. */
function payload($data): string
{
    if (is_string($data)) {
        return $data;
    }
    return json_encode($data, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR);
}

/*
 * POST $data to /publish/<resource> (with ?event=<event> when given).
 * Returns the parsed JSON reply as an array; throws PublishError on any other
 * answer than 200 (400 bad name or body, 401 token, 403 not a trusted
 * address, 413 too large, 5xx sse-fcgi down) or when nothing answers.
 * $options: base_url, token, timeout (seconds, default 5).
 */
function publish(string $resource, $data, ?string $event = null, array $options = []): array
{
    $base = $options['base_url'] ?? (getenv('SSE_PUBLISH_URL') ?: 'http://127.0.0.1');
    // ':' is a valid resource character; anything outside the charset is
    // escaped, and sse-fcgi answers 400 for it.
    $url = rtrim($base, '/') . '/publish/' . str_replace('%3A', ':', rawurlencode($resource));
    if ($event !== null) {
        $url .= '?event=' . str_replace('%3A', ':', rawurlencode($event));
    }
    $headers = ['Content-Type: application/json', 'Connection: close'];
    if (!empty($options['token'])) {
        $headers[] = 'Authorization: Bearer ' . $options['token'];
    }
    $context = stream_context_create(['http' => [
        'method' => 'POST',
        'header' => implode("\r\n", $headers),
        'content' => payload($data),
        'timeout' => (float)($options['timeout'] ?? 5),
        'ignore_errors' => true,       // read the body of a 4xx/5xx too
        'follow_location' => 0,
        'protocol_version' => 1.1,
    ]]);
    $body = @file_get_contents($url, false, $context);
    $status = 0;
    // $http_response_header is set by file_get_contents(); the last status
    // line is the final answer.
    foreach ($http_response_header ?? [] as $line) {
        if (preg_match('#^HTTP/\S+\s+(\d{3})#', $line, $m)) {
            $status = (int)$m[1];
        }
    }
    if ($body === false || $status === 0) {
        $err = error_get_last();
        throw new PublishError(0, $err['message'] ?? 'no answer', $url);
    }
    if ($status !== 200) {
        throw new PublishError($status, $body, $url);
    }
    $reply = json_decode($body, true);
    if (!is_array($reply)) {
        throw new PublishError($status, 'reply is not JSON: ' . $body, $url);
    }
    return $reply;
}

/*
 * PUBLISH <channel_prefix><resource> <data> through phpredis (or anything
 * with ->publish($channel, $message)).  Returns what Redis answers: how many
 * subscribers got it (each sse-fcgi process is one).
 */
function publish_redis($redis, string $resource, $data, string $channel_prefix = 'sse:'): int
{
    return (int)$redis->publish($channel_prefix . $resource, payload($data));
}

function b64url(string $raw): string
{
    return rtrim(strtr(base64_encode($raw), '+/', '-_'), '=');
}

/*
 * An HS256 JSON Web Token granting streams on $patterns (resource names,
 * prefixes ending in '*', or '*') and, optionally, publishing on $publish,
 * valid for $ttl seconds.  $secret is jwt.secret of sse-fcgi.conf (at least
 * 32 bytes).  Hand it to the browser as the sse_token cookie or the token
 * query parameter.
 */
function subscribe_token(array $patterns, int $ttl, string $secret, array $publish = [],
                         ?string $subject = null, ?int $now = null): string
{
    if (strlen($secret) < 32) {
        throw new \InvalidArgumentException('the HS256 secret must be at least 32 bytes');
    }
    $now = $now ?? time();
    $claims = ['iat' => $now, 'exp' => $now + $ttl, 'sse' => ['subscribe' => array_values($patterns)]];
    if ($publish) {
        $claims['sse']['publish'] = array_values($publish);
    }
    if ($subject !== null) {
        $claims['sub'] = $subject;
    }
    $head = b64url(json_encode(['alg' => 'HS256', 'typ' => 'JWT']));
    $body = b64url(json_encode($claims, JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR));
    return $head . '.' . $body . '.' . b64url(hash_hmac('sha256', $head . '.' . $body, $secret, true));
}

if (PHP_SAPI === 'cli' && isset($argv[0]) && realpath($argv[0]) === __FILE__) {
    if ($argc < 3 || $argc > 4) {
        fwrite(STDERR, "usage: php sse_publish.php RESOURCE DATA [EVENT]\n");
        exit(1);
    }
    try {
        echo json_encode(publish($argv[1], $argv[2], $argv[3] ?? null)), "\n";
    } catch (PublishError $e) {
        fwrite(STDERR, $e->getMessage() . "\n");
        exit(1);
    }
}
