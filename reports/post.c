/* post.c - `qfleet report --post URL`: the report's JSON summary POSTed with libcurl, for chat
 * webhooks and CI status endpoints.
 *
 * One request, no redirects followed (a webhook that redirects a POST is misconfigured, and
 * following would resend the body elsewhere), http and https only, a connect timeout and a
 * total timeout, so a dead endpoint costs the report seconds, never a hang. Any transport
 * failure or an HTTP status of 300 or more is an error naming the URL and the reason; the
 * answer's body is read and dropped. Called once per report: not hot.
 */
#include "qf_report.h"

#include <assert.h>
#include <pthread.h>
#include <string.h>

#include <curl/curl.h>

#include "qf_err.h"
#include "qf_version.h"

/* Connecting may take at most this, or the total timeout when that is shorter. */
#define POST_CONNECT_TIMEOUT_MS 10000L

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static CURLcode g_curl_rc;

static void init_once(void)
{
    g_curl_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

int qf_report_post(const char *url, const char *body, double timeout_s)
{
    assert(url && body && timeout_s > 0);
    pthread_once(&g_once, init_once);
    if (g_curl_rc != CURLE_OK)
        return qf_errorf(QF_EUNSUP, "report: --post %s: libcurl could not be initialized: %s",
                         url, curl_easy_strerror(g_curl_rc));
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    if (!h || !hdr) {
        curl_easy_cleanup(h);
        curl_slist_free_all(hdr);
        return qf_errorf(QF_ENOMEM, "report: --post %s: out of memory", url);
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    long total_ms = (long)(timeout_s * 1000.0);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     total_ms < POST_CONNECT_TIMEOUT_MS ? total_ms : POST_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, total_ms);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    curl_easy_setopt(h, CURLOPT_USERAGENT, "quantfleet/" QF_VERSION);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdr);
    const char *why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    if (rc == CURLE_OPERATION_TIMEDOUT)
        return qf_errorf(QF_ETIMEDOUT, "report: --post %s: no answer within %g s (%s)", url,
                         timeout_s, why);
    if (rc != CURLE_OK)
        return qf_errorf(QF_ENET, "report: --post %s: %s", url, why);
    if (code < 200 || code >= 300)
        return qf_errorf(QF_ENET, "report: --post %s: the server answered HTTP %ld", url, code);
    return 0;
}
