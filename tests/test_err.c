/* test_err.c - the error list: names, messages, and the stderr reporter's return value. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "qf_err.h"

static void test_names_and_messages(void **state)
{
    (void)state;
    assert_string_equal(qf_err_name(QF_OK), "QF_OK");
    assert_string_equal(qf_err_name(QF_ESHAPE), "QF_ESHAPE");
    assert_string_equal(qf_strerror(QF_ENOMEM), "out of memory");
    assert_string_equal(qf_err_name(12345), "QF_EUNKNOWN");
    assert_string_equal(qf_strerror(-1), "unknown error");
}

static void test_every_error_is_distinct_and_negative(void **state)
{
    (void)state;
    int codes[] = {
#define CODE_(name, msg) QF_##name,
        QF_ERRNO_MAP(CODE_)
#undef CODE_
    };
    size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++) {
        assert_true(codes[i] < 0);
        assert_string_not_equal(qf_err_name(codes[i]), "QF_EUNKNOWN");
        assert_true(strlen(qf_strerror(codes[i])) > 0);
        for (size_t j = i + 1; j < n; j++)
            assert_int_not_equal(codes[i], codes[j]);
    }
}

static void test_errorf_returns_its_code(void **state)
{
    (void)state;
    assert_int_equal(qf_errorf(QF_EPARSE, "test: %s line %d is bad (expected)", "x.yaml", 3),
                     QF_EPARSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_messages),
        cmocka_unit_test(test_every_error_is_distinct_and_negative),
        cmocka_unit_test(test_errorf_returns_its_code),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
