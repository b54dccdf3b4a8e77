/*
 * errors.c - the table of the SDK's error codes, built from the one list
 * in smartbus.h (SMARTBUS_ERROR_LIST), for callers that need names and
 * descriptions at run time (the Python binding's smartbus.errors).
 */
#include "platform.h"
#include "smartbus_ext.h"

#define ERROR_TABLE_ROW(name, code, description) { code, #name, description },

static const smartbus_error_info ERROR_TABLE[] = { SMARTBUS_ERROR_LIST(ERROR_TABLE_ROW) };

const smartbus_error_info *smartbus_error_table(int *count)
{
    *count = (int)(sizeof ERROR_TABLE / sizeof ERROR_TABLE[0]);
    return ERROR_TABLE;
}
