/* ir_print.c: the IR as .pat text (ir.h).  In: an ir_program.  Out: text
 * that the front end parses back to the same tree: parentheses exactly where
 * precedence needs them, windows always with two sizes, index sets as a
 * range or a {...} list, negative constants parenthesised where a sign
 * could merge with an operator.  Used for cache keys and `spatc explain`. */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "ir.h"

/* Binding strength, higher binds tighter (the grammar's order). */
enum { P_COND = 1, P_LOR, P_LAND, P_OR, P_XOR, P_AND, P_EQ, P_REL, P_SHIFT,
       P_ADD, P_MUL, P_UNARY, P_ATOM };

static int prec(const ir_node *n) {
  switch (n->op) {
  case IR_SEL: case IR_PSEL: case IR_FSEL: return P_COND;
  case IR_LOR: return P_LOR;
  case IR_LAND: return P_LAND;
  case IR_OR: case IR_IOR: return P_OR;
  case IR_IXOR: return P_XOR;
  case IR_AND: case IR_IAND: return P_AND;
  case IR_SHL: case IR_SHR: return P_SHIFT;
  case IR_FADD: case IR_FSUB: return P_ADD;
  case IR_FMUL: case IR_FDIV: return P_MUL;
  case IR_FNEG: return P_UNARY;
  case IR_FCONST: return n->fvalue < 0 ? P_UNARY : P_ATOM;
  case IR_EQ: case IR_NE: return P_EQ;
  case IR_LT: case IR_LE: case IR_GT: case IR_GE: return P_REL;
  case IR_ADD: case IR_SUB: case IR_MINUS: return P_ADD;
  case IR_MUL: case IR_DIV: case IR_MOD: return P_MUL;
  case IR_NEG: case IR_NOT: case IR_COMPL: return P_UNARY;
  case IR_CONST: return n->value < 0 ? P_UNARY : P_ATOM;
  default: return P_ATOM;
  }
}

static void expr(FILE *f, const ir_program *p, const ir_node *n, int need);

/* INT64_MIN has no literal (the literal 9223372036854775808 is too big). */
static void print_int(FILE *f, int64_t v) {
  if (v == INT64_MIN)
    fputs("(-9223372036854775807 - 1)", f);
  else
    fprintf(f, "%" PRId64, v);
}

static void name_of(FILE *f, const char *s, int64_t idx, const char *what) {
  if (s)
    fputs(s, f);
  else
    fprintf(f, "%s%" PRId64, what, idx);
}

static void args(FILE *f, const ir_program *p, const ir_node *n) {
  fputc('(', f);
  for (int k = 0; k < n->n_kids; k++) {
    if (k) fputs(", ", f);
    expr(f, p, n->kids[k], P_COND);
  }
  fputc(')', f);
}

static void set(FILE *f, const ir_program *p, const ir_node *s) {
  if (s->op != IR_SET) {
    expr(f, p, s, P_COND);
    return;
  }
  if (s->n_kids == 1 && s->kids[0]->op == IR_RANGE) {
    expr(f, p, s->kids[0]->kids[0], P_COND);
    fputs(" .. ", f);
    expr(f, p, s->kids[0]->kids[1], P_COND);
    return;
  }
  fputc('{', f);
  for (int k = 0; k < s->n_kids; k++) {
    const ir_node *it = s->kids[k];
    if (k) fputs(", ", f);
    if (it->op == IR_RANGE) {
      expr(f, p, it->kids[0], P_COND);
      fputs(" .. ", f);
      expr(f, p, it->kids[1], P_COND);
    } else {
      expr(f, p, it, P_COND);
    }
  }
  fputc('}', f);
}

static void expr(FILE *f, const ir_program *p, const ir_node *n, int need) {
  if (!n) {
    fputs("<null>", f);
    return;
  }
  if (n->op == IR_FCVT) { /* implicit in the language: sema adds it back */
    expr(f, p, n->kids[0], need);
    return;
  }
  int pr = prec(n);
  bool paren = pr < need;
  if (paren) fputc('(', f);
  switch (n->op) {
  case IR_CONST:
    print_int(f, n->value);
    break;
  case IR_VAR_I: case IR_VAR_J: case IR_VAR_H: case IR_SIZE_LQ: case IR_SIZE_LK:
  case IR_SIZE_H: case IR_FULL: case IR_NONE: case IR_CAUSAL: case IR_VAR_B:
  case IR_SIZE_B: case IR_SIZE_HKV: case IR_SIZE_D: case IR_FSCORE:
    fputs(ir_op_text[n->op], f);
    break;
  case IR_FCONST: {
    char buf[40];
    snprintf(buf, sizeof buf, "%.17g", n->fvalue);
    if (isinf(n->fvalue)) snprintf(buf, sizeof buf, "%s", n->fvalue < 0 ? "-inf" : "inf");
    else if (isnan(n->fvalue)) snprintf(buf, sizeof buf, "nan");
    else if (!strpbrk(buf, ".e")) strcat(buf, ".0");
    fputs(buf, f);
    break;
  }
  case IR_FINPUT: case IR_INROW: case IR_ROUTE: case IR_INPUTN:
    fputs(n->op == IR_ROUTE ? "route(" : "", f);
    name_of(f, p && n->value >= 0 && n->value < p->n_inputs ? p->inputs[n->value].name
                                                              : NULL,
            n->value, "input");
    if (n->op == IR_ROUTE) {
      fputc(')', f);
      break;
    }
    if (n->op == IR_INROW && n->n_kids == 0) break;
    fputc('[', f);
    for (int k = 0; k < n->n_kids; k++) {
      if (k) fputs(", ", f);
      expr(f, p, n->kids[k], P_COND);
    }
    fputc(']', f);
    break;
  case IR_FABS: case IR_FEXP: case IR_FLOG: case IR_FSQRT:
  case IR_FTANH: case IR_FMIN: case IR_FMAX:
    fputs(ir_op_text[n->op], f);
    args(f, p, n);
    break;
  case IR_FNEG:
    fputs("-", f);
    expr(f, p, n->kids[0], P_ATOM);
    break;
  case IR_RUNTIME:
    name_of(f, p && n->value >= 0 && n->value < p->n_runtime ? p->runtime[n->value].name
                                                               : NULL,
            n->value, "runtime");
    break;
  case IR_INPUT:
    name_of(f, p && n->value >= 0 && n->value < p->n_inputs ? p->inputs[n->value].name
                                                              : NULL,
            n->value, "input");
    fputc('[', f);
    expr(f, p, n->kids[0], P_COND);
    fputc(']', f);
    break;
  case IR_EXTERN:
    name_of(f, p && n->value >= 0 && n->value < p->n_externs ? p->externs[n->value].name
                                                               : NULL,
            n->value, "extern");
    args(f, p, n);
    break;
  case IR_NEG: case IR_NOT: case IR_COMPL: {
    fputs(ir_op_text[n->op], f);
    const ir_node *k = n->kids[0];
    /* "- -3" and "- (-x)" would lex fine, but keep signs visibly apart. */
    bool sep = (k->op == IR_CONST && k->value < 0) || k->op == IR_NEG;
    expr(f, p, k, sep ? P_ATOM : P_UNARY);
    break;
  }
  case IR_ABS: case IR_MIN: case IR_MAX: case IR_WINDOW: case IR_DILATED:
  case IR_BLOCK: case IR_STRIDE: case IR_RANDOM: case IR_WHERE: case IR_TOPK:
    fputs(ir_op_text[n->op], f);
    args(f, p, n);
    break;
  case IR_ROWS: case IR_COLS: case IR_GLOBAL: case IR_DIAG:
    fputs(ir_op_text[n->op], f);
    fputc('(', f);
    set(f, p, n->kids[0]);
    fputc(')', f);
    break;
  case IR_SET:
    set(f, p, n);
    break;
  case IR_RANGE:
    expr(f, p, n->kids[0], P_COND);
    fputs(" .. ", f);
    expr(f, p, n->kids[1], P_COND);
    break;
  case IR_BLOCKS:
    fputs("blocks(", f);
    expr(f, p, n->kids[0], P_COND);
    fputs(") { ", f);
    expr(f, p, n->kids[1], P_COND);
    fputs(" }", f);
    break;
  case IR_SEL: case IR_PSEL: case IR_FSEL:
    expr(f, p, n->kids[0], P_COND + 1);
    fputs(" ? ", f);
    expr(f, p, n->kids[1], P_COND);
    fputs(" : ", f);
    expr(f, p, n->kids[2], P_COND);
    break;
  default: {
    /* binary: left-associative, except comparisons, which do not chain */
    /* comparisons: operands that are comparisons too get parentheses */
    bool cmp = pr == P_EQ || pr == P_REL;
    expr(f, p, n->kids[0], cmp ? P_REL + 1 : pr);
    fprintf(f, " %s ", ir_op_text[n->op]);
    expr(f, p, n->kids[1], cmp ? P_REL + 1 : pr + 1);
    break;
  }
  }
  if (paren) fputc(')', f);
}

void ir_print(FILE *f, const ir_program *p, const ir_node *n) { expr(f, p, n, P_COND); }

void ir_print_program(FILE *f, const ir_program *p) {
  for (int k = 0; k < p->n_externs; k++) {
    fprintf(f, "extern fn %s(", p->externs[k].name);
    for (int a = 0; a < p->externs[k].n_args; a++) fputs(a ? ", int" : "int", f);
    fputs(") -> bool;\n", f);
  }
  fprintf(f, "pattern %s(", p->name ? p->name : "main");
  int n = 0;
  for (int k = 0; k < p->n_params; k++, n++) {
    fprintf(f, "%s%s = ", n ? ", " : "", p->params[k].name);
    print_int(f, p->params[k].value);
  }
  for (int k = 0; k < p->n_runtime; k++, n++) {
    fprintf(f, "%sruntime %s", n ? ", " : "", p->runtime[k].name);
    if (p->runtime[k].has_deflt) {
      fputs(" = ", f);
      print_int(f, p->runtime[k].deflt);
    }
  }
  for (int k = 0; k < p->n_inputs; k++, n++) {
    const ir_input *in = &p->inputs[k];
    fprintf(f, "%sinput %s: %s[", n ? ", " : "", in->name, in->is_float ? "float" : "int");
    bool legacy = !in->is_float && (in->n_dims == 0 ||
                                    (in->n_dims == 1 && in->dims[0]->op == IR_SIZE_LK));
    for (int d = 0; d < in->n_dims && !legacy; d++) {
      if (d) fputs(", ", f);
      ir_print(f, p, in->dims[d]);
    }
    fputc(']', f);
  }
  fputs(p->top_left ? ") aligned(top_left) =\n    " : ") =\n    ", f);
  ir_print(f, p, p->root);
  if (p->score) {
    fputs("\n    with score ", f);
    ir_print(f, p, p->score);
  }
  fputs(";\n", f);
}
