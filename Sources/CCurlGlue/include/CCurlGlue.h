// SPDX-License-Identifier: Apache-2.0
/* Typed wrappers for libcurl's variadic calls (curl_easy_setopt, curl_easy_getinfo,
 * curl_multi_setopt), which Swift cannot call. Each returns what the wrapped call returns. The
 * callback types are curl's own; the option numbers come from <curl/curl.h> through CCurl. Only
 * BGSyncHandlerHTTP uses this module (one module per C library: this is CCurl's glue). */
#pragma once
#include <curl/curl.h>

CURLcode ccurl_easy_set_long(CURL *easy, CURLoption option, long value);
CURLcode ccurl_easy_set_off(CURL *easy, CURLoption option, curl_off_t value);
CURLcode ccurl_easy_set_string(CURL *easy, CURLoption option, const char *value);
CURLcode ccurl_easy_set_pointer(CURL *easy, CURLoption option, void *value);
CURLcode ccurl_easy_set_slist(CURL *easy, CURLoption option, struct curl_slist *value);
CURLcode ccurl_easy_set_read_function(CURL *easy, curl_read_callback function);
CURLcode ccurl_easy_set_write_function(CURL *easy, curl_write_callback function);
CURLcode ccurl_easy_set_header_function(CURL *easy, curl_write_callback function);
CURLcode ccurl_easy_set_seek_function(CURL *easy, curl_seek_callback function);
CURLcode ccurl_easy_set_xferinfo_function(CURL *easy, curl_xferinfo_callback function);

CURLcode ccurl_easy_get_long(CURL *easy, CURLINFO info, long *value);
CURLcode ccurl_easy_get_off(CURL *easy, CURLINFO info, curl_off_t *value);
CURLcode ccurl_easy_get_string(CURL *easy, CURLINFO info, const char **value);

/* The sockets libcurl opens for one easy handle (and its connections, whichever later transfer
 * closes them), to ask how much of what libcurl wrote has not been acknowledged. libcurl counts a
 * body as sent once it is in the kernel's send buffer; CURLINFO_ACTIVESOCKET answers only for
 * CURLOPT_CONNECT_ONLY transfers, so the sockets are followed from their opening. */
typedef struct ccurl_sockets ccurl_sockets;
/* A tracker for the life of the process (never freed: connections it follows outlive transfers). */
ccurl_sockets *ccurl_sockets_new(void);
/* Sets CURLOPT_OPENSOCKETFUNCTION and CURLOPT_CLOSESOCKETFUNCTION (with their data) on `easy`:
 * sockets are opened close-on-exec and followed by `sockets`. Again after each curl_easy_reset. */
CURLcode ccurl_sockets_follow(CURL *easy, ccurl_sockets *sockets);
/* Bytes written to the followed sockets that their peers have not acknowledged (ioctl SIOCOUTQ,
 * variadic too), summed: idle kept connections hold none. */
long ccurl_sockets_unacknowledged(ccurl_sockets *sockets);

CURLMcode ccurl_multi_set_long(CURLM *multi, CURLMoption option, long value);

/* The easy handle's result of a finished transfer from curl_multi_info_read, or -1 while there
 * is none: `*easy` is set to the handle that finished. */
int ccurl_multi_next_done(CURLM *multi, CURL **easy, CURLcode *result);
