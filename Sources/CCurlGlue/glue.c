// SPDX-License-Identifier: Apache-2.0
#include "CCurlGlue.h"

#include <linux/sockios.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

CURLcode ccurl_easy_set_long(CURL *easy, CURLoption option, long value) { return curl_easy_setopt(easy, option, value); }
CURLcode ccurl_easy_set_off(CURL *easy, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(easy, option, value);
}
CURLcode ccurl_easy_set_string(CURL *easy, CURLoption option, const char *value) {
    return curl_easy_setopt(easy, option, value);
}
CURLcode ccurl_easy_set_pointer(CURL *easy, CURLoption option, void *value) {
    return curl_easy_setopt(easy, option, value);
}
CURLcode ccurl_easy_set_slist(CURL *easy, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(easy, option, value);
}
CURLcode ccurl_easy_set_read_function(CURL *easy, curl_read_callback function) {
    return curl_easy_setopt(easy, CURLOPT_READFUNCTION, function);
}
CURLcode ccurl_easy_set_write_function(CURL *easy, curl_write_callback function) {
    return curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, function);
}
CURLcode ccurl_easy_set_header_function(CURL *easy, curl_write_callback function) {
    return curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, function);
}
CURLcode ccurl_easy_set_seek_function(CURL *easy, curl_seek_callback function) {
    return curl_easy_setopt(easy, CURLOPT_SEEKFUNCTION, function);
}
CURLcode ccurl_easy_set_xferinfo_function(CURL *easy, curl_xferinfo_callback function) {
    return curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, function);
}

CURLcode ccurl_easy_get_long(CURL *easy, CURLINFO info, long *value) { return curl_easy_getinfo(easy, info, value); }
CURLcode ccurl_easy_get_off(CURL *easy, CURLINFO info, curl_off_t *value) {
    return curl_easy_getinfo(easy, info, value);
}
CURLcode ccurl_easy_get_string(CURL *easy, CURLINFO info, const char **value) {
    return curl_easy_getinfo(easy, info, value);
}

/* libcurl keeps a few connections per handle (its cache): a small fixed table is ample; a socket
 * beyond it is simply not counted. */
#define CCURL_MAX_SOCKETS 32
struct ccurl_sockets {
    curl_socket_t fds[CCURL_MAX_SOCKETS];
};

ccurl_sockets *ccurl_sockets_new(void) {
    ccurl_sockets *sockets = malloc(sizeof *sockets);
    if (sockets == NULL) return NULL;
    for (int i = 0; i < CCURL_MAX_SOCKETS; i++) sockets->fds[i] = CURL_SOCKET_BAD;
    return sockets;
}

static curl_socket_t open_socket(void *data, curlsocktype purpose, struct curl_sockaddr *address) {
    (void)purpose;
    ccurl_sockets *sockets = data;
    curl_socket_t fd = socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
    if (fd == CURL_SOCKET_BAD) return CURL_SOCKET_BAD;
    for (int i = 0; i < CCURL_MAX_SOCKETS; i++) {
        if (sockets->fds[i] == CURL_SOCKET_BAD) {
            sockets->fds[i] = fd;
            break;
        }
    }
    return fd;
}

static int close_socket(void *data, curl_socket_t fd) {
    ccurl_sockets *sockets = data;
    for (int i = 0; i < CCURL_MAX_SOCKETS; i++) {
        if (sockets->fds[i] == fd) sockets->fds[i] = CURL_SOCKET_BAD;
    }
    return close(fd);
}

CURLcode ccurl_sockets_follow(CURL *easy, ccurl_sockets *sockets) {
    if (sockets == NULL) return CURLE_OK;
    CURLcode code = curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    if (code == CURLE_OK) code = curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, sockets);
    if (code == CURLE_OK) code = curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, close_socket);
    if (code == CURLE_OK) code = curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, sockets);
    return code;
}

long ccurl_sockets_unacknowledged(ccurl_sockets *sockets) {
    long total = 0;
    if (sockets == NULL) return 0;
    for (int i = 0; i < CCURL_MAX_SOCKETS; i++) {
        int queued = 0;
        if (sockets->fds[i] != CURL_SOCKET_BAD && ioctl(sockets->fds[i], SIOCOUTQ, &queued) == 0 && queued > 0)
            total += queued;
    }
    return total;
}

CURLMcode ccurl_multi_set_long(CURLM *multi, CURLMoption option, long value) {
    return curl_multi_setopt(multi, option, value);
}

int ccurl_multi_next_done(CURLM *multi, CURL **easy, CURLcode *result) {
    int left = 0;
    CURLMsg *message;
    while ((message = curl_multi_info_read(multi, &left)) != NULL) {
        if (message->msg == CURLMSG_DONE) {
            *easy = message->easy_handle;
            *result = message->data.result;
            return 0;
        }
    }
    return -1;
}
