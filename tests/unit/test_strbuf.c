/*
 * Unit tests for strbuf as a byte buffer: strbuf_reserve's growth (256,
 * then doubling; batch relies on 4096 being reached exactly), raw bytes
 * written in place, printf appends after them, and the sticky oom.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "camjoin/strbuf.h"

static void test_reserve_grows_by_doubling(void **state)
{
    (void)state;
    strbuf_t b = {0};
    assert_int_equal(strbuf_reserve(&b, 1), 0);
    assert_int_equal(b.cap, 256);
    assert_int_equal(b.len, 0);
    assert_int_equal(strbuf_reserve(&b, 4096), 0);
    assert_int_equal(b.cap, 4096);
    memset(b.data, 'x', 4000);
    b.len = 4000;
    assert_int_equal(strbuf_reserve(&b, 96), 0); /* fits exactly: no growth */
    assert_int_equal(b.cap, 4096);
    assert_int_equal(strbuf_reserve(&b, 97), 0);
    assert_int_equal(b.cap, 8192);
    assert_int_equal(strbuf_reserve(&b, 20000), 0);
    assert_int_equal(b.cap, 32768);
    assert_int_equal(b.len, 4000);
    for (size_t i = 0; i < 4000; i++)
        assert_int_equal(b.data[i], 'x');
    assert_int_equal(b.oom, 0);
    strbuf_free(&b);
}

static void test_raw_bytes_then_text(void **state)
{
    (void)state;
    strbuf_t b = {0};
    static const char bin[] = {'P', 0, '\xff', 0};
    assert_int_equal(strbuf_reserve(&b, sizeof bin), 0);
    memcpy(b.data + b.len, bin, sizeof bin);
    b.len += sizeof bin;
    strbuf_addf(&b, "n=%d", 42);
    assert_int_equal(b.len, sizeof bin + 4);
    assert_memory_equal(b.data, bin, sizeof bin);
    assert_memory_equal(b.data + sizeof bin, "n=42", 5); /* with its NUL */
    strbuf_free(&b);
}

static void test_addf_long_text(void **state)
{
    (void)state;
    strbuf_t b = {0};
    char word[1001];
    memset(word, 'a', 1000);
    word[1000] = '\0';
    for (int i = 0; i < 10; i++)
        strbuf_addf(&b, "%s%d", word, i);
    assert_int_equal(b.oom, 0);
    assert_int_equal(b.len, 10 * 1001);
    assert_int_equal(strlen(b.data), b.len);
    assert_int_equal(b.data[1000], '0');
    assert_int_equal(b.data[10 * 1001 - 1], '9');
    assert_true(b.cap > b.len);
    strbuf_free(&b);
}

static void test_reserve_failure_is_sticky(void **state)
{
    (void)state;
    strbuf_t b = {0};
    strbuf_addf(&b, "abc");
    assert_int_equal(strbuf_reserve(&b, SIZE_MAX), -1);
    assert_int_equal(b.oom, 1);
    assert_string_equal(b.data, "abc"); /* what was there stays */
    assert_int_equal(strbuf_reserve(&b, 1), -1); /* sticky */
    strbuf_addf(&b, "def");
    assert_int_equal(b.len, 3);
    strbuf_reset(&b);
    assert_int_equal(b.oom, 0);
    assert_int_equal(strbuf_reserve(&b, 1), 0);
    strbuf_addf(&b, "x");
    assert_string_equal(b.data, "x");
    strbuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reserve_grows_by_doubling),
        cmocka_unit_test(test_raw_bytes_then_text),
        cmocka_unit_test(test_addf_long_text),
        cmocka_unit_test(test_reserve_failure_is_sticky),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
