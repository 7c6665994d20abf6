# Reference Type III F tests (issue 14, acceptance 5): lmerTest's
# anova(fit, type = 3, ddf = "Satterthwaite") on four designs, written to
# anova.json beside this script; Oats (nlme) and cake (lme4) are exported
# to tests/data/lme4/data/ with their factors as text. Run from the
# repository root:
#   Rscript tests/data/lme4/anova/make_anova.R
suppressMessages({library(lmerTest); library(jsonlite)})
dir <- "tests/data/lme4/data"
data("Oats", package = "nlme")
oats <- data.frame(Block = as.character(Oats$Block), Variety = as.character(Oats$Variety),
                   nitro = Oats$nitro, yield = Oats$yield)
write.csv(oats, file.path(dir, "oats.csv"), row.names = FALSE)
cake <- data.frame(replicate = as.integer(as.character(lme4::cake$replicate)),
                   recipe = as.character(lme4::cake$recipe),
                   temp = paste0("t", as.character(lme4::cake$temperature)),
                   angle = lme4::cake$angle)
write.csv(cake, file.path(dir, "cake.csv"), row.names = FALSE)
cases <- list(
  list(data = "crt_stepped_wedge.csv",
       formula = "qpr ~ treat + period + (1|cluster) + (1|cluster:period)"),
  list(data = "oats.csv", formula = "yield ~ nitro + Variety + (1|Block) + (1|Block:Variety)"),
  list(data = "cake.csv", formula = "angle ~ recipe * temp + (1|recipe:replicate)"),
  list(data = "crt_parallel.csv", formula = "qpr ~ factor(arm) * site + baseline + (1|team)")
)
ctl <- lmerControl(optimizer = "bobyqa",
                   optCtrl = list(rhobeg = 2e-4, rhoend = 2e-11, maxfun = 1e5))
out <- lapply(cases, function(cs) {
  d <- read.csv(file.path(dir, cs$data))
  m <- lmer(as.formula(cs$formula), data = d, REML = TRUE, control = ctl)
  a <- anova(m, type = 3, ddf = "Satterthwaite")
  list(data = cs$data, formula = cs$formula,
       rows = lapply(seq_len(nrow(a)), function(i)
         list(term = rownames(a)[i], num_df = a[i, "NumDF"], den_df = a[i, "DenDF"],
              f = a[i, "F value"], p = a[i, "Pr(>F)"])))
})
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE),
           "tests/data/lme4/anova/anova.json")
